/* Shared by the fuzz targets: run whatever a model supports -- forward, stream,
 * training forward + backward -- on small inputs derived from the fuzz bytes.
 * Every call may fail (errors are fine); none may crash, hang or touch memory
 * outside its buffers (the targets run under ASan + UBSan). Each buffer is a heap
 * block of exactly the element count passed with it, so a read or write past a
 * count is caught. */
#ifndef FS_FUZZ_COMMON_H
#define FS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastseq.h"

/* Bytes consumed front to back; zeros once they run out. */
typedef struct fz_bytes {
    const uint8_t *p;
    size_t n;
} fz_bytes;

static uint8_t fz_u8(fz_bytes *b) {
    if (!b->n) return 0;
    b->n--;
    return *b->p++;
}

static uint32_t fz_u32(fz_bytes *b) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fz_u8(b) << (8 * i);
    return v;
}

/* A size: mostly small (0..15), sometimes an edge value the validation must catch. */
static int32_t fz_size(fz_bytes *b) {
    uint8_t v = fz_u8(b);
    switch (v) {
    case 0xFF: return -1;
    case 0xFE: return INT32_MAX;
    case 0xFD: return INT32_MIN;
    case 0xFC: return (int32_t)fz_u32(b);
    default: return v & 15;
    }
}

/* n floats (at least one allocated, so a count of 0 still has a non-NULL block),
 * filled from the bytes: mostly moderate values, sometimes inf or NaN. */
static float *fz_floats(fz_bytes *b, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) {
        uint8_t v = fz_u8(b);
        p[i] = v == 0xFF ? 1.0f / 0.0f : v == 0xFE ? 0.0f / 0.0f : ((float)v - 128.0f) / 32.0f;
    }
    return p;
}

/* The element count passed for a buffer of `n`: usually n, sometimes off by one
 * (the library must refuse it). The block allocated is exactly the count passed. */
static size_t fz_count(fz_bytes *b, size_t n) {
    uint8_t v = fz_u8(b);
    if (v == 1 && n > 0) return n - 1;
    if (v == 2) return n + 1;
    return n;
}

/* Skip work that is legitimately large (the inputs are bounded, the model may not be). */
#define FZ_MAX_FLOATS ((size_t)1 << 22)
#define FZ_MAX_BYTES ((size_t)64 << 20)

static size_t fz_mul(size_t a, size_t b) {
    return (a && b > FZ_MAX_FLOATS / a) ? FZ_MAX_FLOATS + 1 : a * b;
}

/* Exercise a model with inputs decoded from `b`. */
static void fz_run_model(fs_rnn *m, fz_bytes *b) {
    fs_rnn_config cfg;
    if (fs_rnn_get_config(m, &cfg) != FS_OK) return;
    int32_t T = fz_size(b), B = fz_size(b);
    size_t t = T > 0 && T < 64 ? (size_t)T : 1, bb = B > 0 && B < 64 ? (size_t)B : 1;
    size_t D = cfg.bidirectional ? 2 : 1, L = (size_t)cfg.num_layers;
    size_t R = cfg.proj_size > 0 ? (size_t)cfg.proj_size : (size_t)cfg.hidden_size;
    size_t nx = fz_mul(fz_mul(t, bb), (size_t)cfg.input_size);
    size_t ny = fz_mul(fz_mul(t, bb), D * R);
    size_t nh = fz_mul(fz_mul(L * D, bb), R), nc = fz_mul(fz_mul(L * D, bb), (size_t)cfg.hidden_size);
    if (nx > FZ_MAX_FLOATS || ny > FZ_MAX_FLOATS || nh > FZ_MAX_FLOATS || nc > FZ_MAX_FLOATS) return;
    /* fs_rnn_forward sizes its workspace from seq_len x batch before it checks the
     * buffers, so a huge T with a small x asks malloc for that much: skip those */
    size_t ws = 0;
    int big = fs_rnn_forward_workspace_size(m, T, B, &ws) == FS_OK && ws > FZ_MAX_BYTES;
    uint8_t flags = fz_u8(b);

    fs_seq_args a;
    memset(&a, 0, sizeof a);
    a.seq_len = T;
    a.batch = B;
    a.batch_first = flags & 1;
    a.x_count = fz_count(b, nx);
    a.y_count = fz_count(b, ny);
    float *x = fz_floats(b, a.x_count), *y = malloc((a.y_count ? a.y_count : 1) * sizeof *y);
    float *h0 = NULL, *c0 = NULL, *hn = NULL, *cn = NULL;
    int32_t *lengths = NULL;
    if (flags & 2) a.h0_count = fz_count(b, nh), h0 = fz_floats(b, a.h0_count);
    if (flags & 4) a.c0_count = fz_count(b, nc), c0 = fz_floats(b, a.c0_count);
    if (flags & 8) a.h_n_count = fz_count(b, nh), hn = malloc((a.h_n_count ? a.h_n_count : 1) * sizeof *hn);
    if (flags & 16) a.c_n_count = fz_count(b, nc), cn = malloc((a.c_n_count ? a.c_n_count : 1) * sizeof *cn);
    if (flags & 32) {
        a.lengths_count = fz_count(b, bb);
        lengths = malloc((a.lengths_count ? a.lengths_count : 1) * sizeof *lengths);
        for (size_t i = 0; lengths && i < a.lengths_count; i++) lengths[i] = fz_size(b);
    }
    a.x = x, a.y = y, a.h0 = h0, a.c0 = c0, a.h_n = hn, a.c_n = cn, a.lengths = lengths;
    if (x && y && !big) {
        fs_rnn_forward(m, &a);

        /* training forward + backward on a tape sized from the bytes too */
        fs_rnn_tape *tape = NULL;
        size_t tape_bytes = 0;
        if (fs_rnn_tape_size(m, (int32_t)t, (int32_t)bb, &tape_bytes) == FS_OK && tape_bytes <= FZ_MAX_BYTES &&
            fs_rnn_tape_create(m, (int32_t)t, (int32_t)bb, &tape) == FS_OK) {
            if (fs_rnn_train_forward(m, &a, tape) == FS_OK) {
                size_t np = 0;
                fs_rnn_param_count(m, &np);
                fs_grad_args g;
                memset(&g, 0, sizeof g);
                g.grad_y_count = fz_count(b, ny);
                float *gy = fz_floats(b, g.grad_y_count);
                g.grad_x_count = fz_count(b, nx);
                float *gx = malloc((g.grad_x_count ? g.grad_x_count : 1) * sizeof *gx);
                g.grad_params_count = fz_count(b, np);
                float *gp = malloc((g.grad_params_count ? g.grad_params_count : 1) * sizeof *gp);
                g.grad_y = gy, g.grad_x = gx, g.grad_params = gp;
                if (gy && gx && gp) fs_rnn_backward(m, tape, &g);
                free(gy), free(gx), free(gp);
            }
            fs_rnn_tape_free(tape);
        }
    }
    free(x), free(y), free(h0), free(c0), free(hn), free(cn), free(lengths);

    /* a few streaming steps */
    fs_rnn_stream *st = NULL;
    size_t stream_bytes = 0;
    if (fs_rnn_stream_memory_size(m, B, &stream_bytes) == FS_OK && stream_bytes <= FZ_MAX_BYTES &&
        fs_rnn_stream_create(m, B, &st) == FS_OK) {
        size_t sx = fz_mul(bb, (size_t)cfg.input_size), sy = fz_mul(bb, R);
        for (int k = 0; k < 3 && sx <= FZ_MAX_FLOATS && sy <= FZ_MAX_FLOATS; k++) {
            size_t cx = fz_count(b, sx), cy = fz_count(b, sy);
            float *xs = fz_floats(b, cx), *ys = malloc((cy ? cy : 1) * sizeof *ys);
            if (xs && ys) fs_rnn_stream_step(st, xs, cx, ys, cy);
            free(xs), free(ys);
        }
        size_t ch = fz_count(b, fz_mul(L, sy));
        float *h = ch <= FZ_MAX_FLOATS ? malloc((ch ? ch : 1) * sizeof *h) : NULL;
        if (h) fs_rnn_stream_get_state(st, h, ch, NULL, 0), fs_rnn_stream_set_state(st, h, ch, NULL, 0);
        free(h);
        fs_rnn_stream_reset(st);
        fs_rnn_stream_free(st);
    }
}

#endif /* FS_FUZZ_COMMON_H */
