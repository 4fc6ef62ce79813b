/* fs_rnn_stream: one step at a time with the states kept here between calls.
 * Everything is allocated at creation; a step only computes. */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "rnn_step.h"
#include "threads.h"

struct fs_rnn_stream {
    const fs_rnn *model;
    size_t batch;
    size_t threads; /* tiles available: the most threads a step may use */
    float *h;       /* [L][2][batch][hp]: double-buffered per layer */
    float *c;       /* [L][batch][hp] */
    float *gx;      /* [batch][G*hp] */
    float *tile;    /* [threads][batch][G*8] */
    int cur;        /* which half of each h pair is current */
    int owned;      /* 1: made by fs_rnn_stream_create */
};

static size_t h_at(const fs_rnn_stream *s, size_t layer, int half) {
    return (layer * 2 + (size_t)half) * s->batch * s->model->hp;
}

/* Sizes the stream's single block (struct first, then the float arrays) and,
 * given a base, carves it. */
static int layout(const fs_rnn *m, size_t batch, char *base, size_t *bytes_out) {
    const size_t L = (size_t)m->cfg.num_layers, hp = m->hp, G = m->gates;
    const size_t threads = (size_t)fs__max_threads();
    size_t bh, n_h, n_c, n_gx, n_tile, total, bytes;
    int ok = fs__mul(batch, hp, &bh) && fs__mul(bh, 2 * L, &n_h) && fs__mul(bh, L, &n_c) &&
             fs__mul(bh, G, &n_gx) && fs__mul(batch, threads * G * FS_NB, &n_tile) &&
             fs__add(n_h, n_c, &total) && fs__add(total, n_gx, &total) &&
             fs__add(total, n_tile, &total) && fs__mul(total, sizeof(float), &bytes) &&
             fs__add(bytes, fs__align_up(sizeof(fs_rnn_stream)), &bytes);
    if (!ok) return 0;
    if (base) {
        fs_rnn_stream *s = (fs_rnn_stream *)base;
        s->model = m;
        s->batch = batch;
        s->threads = threads;
        s->h = (float *)(base + fs__align_up(sizeof(fs_rnn_stream)));
        s->c = s->h + n_h;
        s->gx = s->c + n_c;
        s->tile = s->gx + n_gx;
    }
    *bytes_out = bytes;
    return 1;
}

fs_status fs_rnn_stream_memory_size(const fs_rnn *model, int32_t batch, size_t *bytes_out) {
    fs__clear_error();
    if (!model || !bytes_out) return fs__fail(FS_ERR_NULL_ARG, "model and bytes_out must not be NULL");
    if (batch < 1) return fs__fail(FS_ERR_INVALID_ARG, "batch: expected >= 1, got %d", (int)batch);
    if (model->dirs != 1)
        return fs__fail(FS_ERR_UNSUPPORTED, "a bidirectional model cannot stream: its reverse direction needs the whole sequence");
    if (!layout(model, (size_t)batch, NULL, bytes_out))
        return fs__fail(FS_ERR_NOMEM, "stream size overflows for batch %d", (int)batch);
    return FS_OK;
}

fs_status fs_rnn_stream_init_static(const fs_rnn *model, int32_t batch, void *buffer,
                                    size_t buffer_bytes, fs_rnn_stream **out) {
    size_t need;
    fs_status st = fs_rnn_stream_memory_size(model, batch, &need);
    if (st != FS_OK) return st;
    if (!buffer || !out) return fs__fail(FS_ERR_NULL_ARG, "buffer and out must not be NULL");
    *out = NULL;
    if ((uintptr_t)buffer % FS_ALIGN != 0)
        return fs__fail(FS_ERR_INVALID_ARG, "buffer: expected %d-byte alignment", FS_ALIGN);
    if (buffer_bytes < need)
        return fs__fail(FS_ERR_SHAPE, "buffer: expected at least %zu bytes, got %zu", need, buffer_bytes);
    memset(buffer, 0, need);
    layout(model, (size_t)batch, buffer, &need);
    *out = buffer;
    return FS_OK;
}

fs_status fs_rnn_stream_create(const fs_rnn *model, int32_t batch, fs_rnn_stream **out) {
    size_t need;
    fs__clear_error();
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    *out = NULL;
    fs_status st = fs_rnn_stream_memory_size(model, batch, &need);
    if (st != FS_OK) return st;
    void *mem = fs__alloc(need);
    if (!mem) return fs__fail(FS_ERR_NOMEM, "out of memory for a stream of batch %d (%zu bytes)", (int)batch, need);
    fs_rnn_stream_init_static(model, batch, mem, need, out);
    (*out)->owned = 1;
    return FS_OK;
}

void fs_rnn_stream_free(fs_rnn_stream *s) {
    if (s && s->owned) fs__free(s);
}

fs_status fs_rnn_stream_reset(fs_rnn_stream *s) {
    fs__clear_error();
    if (!s) return fs__fail(FS_ERR_NULL_ARG, "stream must not be NULL");
    const size_t L = (size_t)s->model->cfg.num_layers, bh = s->batch * s->model->hp;
    memset(s->h, 0, 2 * L * bh * sizeof(float));
    memset(s->c, 0, L * bh * sizeof(float));
    s->cur = 0;
    return FS_OK;
}

fs_status fs_rnn_stream_step(fs_rnn_stream *s, const float *x, size_t x_count, float *y,
                             size_t y_count) {
    fs__clear_error();
    if (!s || !x || !y) return fs__fail(FS_ERR_NULL_ARG, "stream, x and y must not be NULL");
    const fs_rnn *m = s->model;
    const size_t B = s->batch, H = (size_t)m->cfg.hidden_size, hp = m->hp, G = m->gates;
    const size_t I = (size_t)m->cfg.input_size, L = (size_t)m->cfg.num_layers, nblk = hp / FS_NB;
    if (x_count != B * I)
        return fs__fail(FS_ERR_SHAPE, "x: expected %zu elements (batch %zu x input_size %zu), got %zu", B * I, B, I, x_count);
    if (y_count != B * H)
        return fs__fail(FS_ERR_SHAPE, "y: expected %zu elements (batch %zu x hidden_size %zu), got %zu", B * H, B, H, y_count);

    const fs_kernels *k = fs__kernels();
    int nt = fs__threads_for(2.0 * (double)B * (double)(G * hp) * (double)H, nblk);
    if ((size_t)nt > s->threads) nt = (int)s->threads;
    const float *in = x;
    size_t ld_in = I;
    for (size_t l = 0; l < L; l++) {
        const fs_rnn_unit *u = &m->units[l];
        float *h_new = s->h + h_at(s, l, s->cur ^ 1);
        k->gemm(B, u->in_size, in, ld_in, u->w_ih_packed, G, nblk, u->bias_x, s->gx, G * hp);
        const fs_step st = {
            .model = m, .k = k, .unit = u, .batch = B, .gx = s->gx, .ldgx = G * hp,
            .lengths = NULL, .t = 0, .h_prev = s->h + h_at(s, l, s->cur), .h_new = h_new,
            .c = s->c + l * B * hp, .y = l + 1 == L ? y : NULL, .ldy = H,
        };
        (void)nt;
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            const int id = FS_THREAD_ID(), nth = FS_THREAD_COUNT();
            fs__step_blocks(&st, nblk * (size_t)id / (size_t)nth, nblk * (size_t)(id + 1) / (size_t)nth,
                            s->tile + (size_t)id * B * G * FS_NB);
        }
        in = h_new; /* the next layer reads this layer's new h in place */
        ld_in = hp;
    }
    s->cur ^= 1;
    return FS_OK;
}

/* State buffers in the stream are [L][B][hp] (h: every other half); callers see [L][B][H]. */
static fs_status check_state_count(const fs_rnn_stream *s, const char *name, size_t count) {
    const size_t L = (size_t)s->model->cfg.num_layers, H = (size_t)s->model->cfg.hidden_size;
    if (count != L * s->batch * H)
        return fs__fail(FS_ERR_SHAPE, "%s: expected %zu elements (num_layers %zu x batch %zu x hidden_size %zu), got %zu",
                        name, L * s->batch * H, L, s->batch, H, count);
    return FS_OK;
}

static void copy_state(const fs_rnn_stream *s, float *states, size_t per_layer, float *flat, int to_flat) {
    const size_t L = (size_t)s->model->cfg.num_layers, H = (size_t)s->model->cfg.hidden_size, hp = s->model->hp;
    for (size_t l = 0; l < L; l++)
        for (size_t b = 0; b < s->batch; b++) {
            float *st = states + l * per_layer + b * hp, *fl = flat + (l * s->batch + b) * H;
            if (to_flat) memcpy(fl, st, H * sizeof(float));
            else memcpy(st, fl, H * sizeof(float));
        }
}

fs_status fs_rnn_stream_get_state(const fs_rnn_stream *s, float *h, size_t h_count, float *c,
                                  size_t c_count) {
    fs__clear_error();
    if (!s) return fs__fail(FS_ERR_NULL_ARG, "stream must not be NULL");
    fs_status st;
    if (c && s->model->cfg.cell != FS_CELL_LSTM)
        return fs__fail(FS_ERR_INVALID_ARG, "c: only an LSTM has a cell state");
    if (h && (st = check_state_count(s, "h", h_count)) != FS_OK) return st;
    if (c && (st = check_state_count(s, "c", c_count)) != FS_OK) return st;
    const size_t bh = s->batch * s->model->hp;
    if (h) copy_state(s, s->h + h_at(s, 0, s->cur), 2 * bh, h, 1);
    if (c) copy_state(s, s->c, bh, c, 1);
    return FS_OK;
}

fs_status fs_rnn_stream_set_state(fs_rnn_stream *s, const float *h, size_t h_count, const float *c,
                                  size_t c_count) {
    fs__clear_error();
    if (!s) return fs__fail(FS_ERR_NULL_ARG, "stream must not be NULL");
    fs_status st;
    if (c && s->model->cfg.cell != FS_CELL_LSTM)
        return fs__fail(FS_ERR_INVALID_ARG, "c: only an LSTM has a cell state");
    if (h && (st = check_state_count(s, "h", h_count)) != FS_OK) return st;
    if (c && (st = check_state_count(s, "c", c_count)) != FS_OK) return st;
    const size_t bh = s->batch * s->model->hp;
    if (h) copy_state(s, s->h + h_at(s, 0, s->cur), 2 * bh, (float *)h, 0);
    if (c) copy_state(s, s->c, bh, (float *)c, 0);
    return FS_OK;
}
