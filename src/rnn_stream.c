/* fs_rnn_stream: one step at a time with the states kept here between calls.
 * Everything is allocated at creation; a step only computes. */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "rnn_step.h"
#include "rnn_stream.h"
#include "threads.h"

struct fs_rnn_stream {
    const fs_rnn *model;
    size_t batch;
    size_t threads; /* tiles available: the most threads a step may use */
    float *h;       /* [L][2][batch][rp]: double-buffered per layer */
    float *c;       /* [L][batch][hp] */
    float *gx;      /* [batch][G*hp] */
    float *xa;      /* [batch][wrp] low-rank input intermediate */
    float *mid, *z; /* [batch][hp] step scratch (see fs_step) */
    float *t_low;   /* [batch][urp] */
    float *tile;    /* [threads][fs__tile_floats] */
    float *res;     /* [2][batch][r]: residual layers' outputs, ping-pong (none without residual) */
    int cur;        /* which half of each h pair is current */
    int owned;      /* 1: made by fs_rnn_stream_create */
};

static size_t h_at(const fs_rnn_stream *s, size_t layer, int half) {
    return (layer * 2 + (size_t)half) * s->batch * s->model->rp;
}

/* Sizes the stream's single block (struct first, then the float arrays) and,
 * given a base, carves it. */
static int layout(const fs_rnn *m, size_t batch, char *base, size_t *bytes_out) {
    const size_t L = (size_t)m->cfg.num_layers, threads = (size_t)fs__max_threads();
    fs_rnn_stream *s = (fs_rnn_stream *)base;
    float **slots[9];
    size_t counts[9][2] = {{2 * L * batch, m->rp}, {L * batch, m->hp}, {batch, m->gates * m->hp},
                           {batch, m->wrp}, {batch, m->hp}, {batch, m->hp}, {batch, m->urp},
                           {threads, fs__tile_floats(m, batch)}, {m->cfg.residual ? 2 * batch : 0, m->r}};
    if (s) {
        float **p[9] = {&s->h, &s->c, &s->gx, &s->xa, &s->mid, &s->z, &s->t_low, &s->tile, &s->res};
        memcpy(slots, p, sizeof slots);
        s->model = m;
        s->batch = batch;
        s->threads = threads;
    }
    size_t at = fs__align_up(sizeof(fs_rnn_stream));
    for (int i = 0; i < 9; i++) {
        size_t n, bytes;
        if (!fs__mul(counts[i][0], counts[i][1], &n) || !fs__mul(n, sizeof(float), &bytes) ||
            bytes > SIZE_MAX - FS_ALIGN)
            return 0;
        if (s) *slots[i] = (float *)(base + at);
        if (!fs__add(at, fs__align_up(bytes), &at)) return 0;
    }
    *bytes_out = at;
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
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    *out = NULL;
    if ((st = fs__check_buffer("buffer", buffer, buffer_bytes, need)) != FS_OK) return st;
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
    const size_t L = (size_t)s->model->cfg.num_layers;
    memset(s->h, 0, 2 * L * s->batch * s->model->rp * sizeof(float));
    memset(s->c, 0, L * s->batch * s->model->hp * sizeof(float));
    s->cur = 0;
    return FS_OK;
}

/* Worker id of nth: the input projection of its unit blocks into gx (in:
 * NULL when done already), then its share of each phase's unit blocks and a
 * barrier. The projection is split like the phases that read it: no barrier. */
static void step_worker(const fs_step *st, const float *in, size_t ld_in, float *gx, const fs_phase *phases,
                        const size_t *blocks, size_t n_phases, float *tile, int id, int nth) {
    const size_t nb = st->model->hp / FS_NB;
    const fs_qscratch qs = fs__qscratch(st->model, st->batch, tile);
    if (in)
        fs__project_blocks(st->model, st->k, st->unit, st->batch, in, ld_in, gx, nb * (size_t)id / (size_t)nth,
                           nb * (size_t)(id + 1) / (size_t)nth, &qs);
    if (nth == 1 && fs__step_fused(st, tile)) return;
    for (size_t ph = 0; ph < n_phases; ph++) {
        fs__step_phase(st, phases[ph], blocks[ph] * (size_t)id / (size_t)nth,
                       blocks[ph] * (size_t)(id + 1) / (size_t)nth, tile);
        FS_BARRIER(nth);
    }
}

/* One step of rows [0, B) over input x, or (x NULL) over layer 0's input projection gx0. */
static void stream_step(fs_rnn_stream *s, const float *x, const float *gx0, size_t B, float *y) {
    const fs_rnn *m = s->model;
    const size_t R = m->r, hp = m->hp;
    const size_t I = (size_t)m->cfg.input_size, L = (size_t)m->cfg.num_layers;
    const fs_kernels *k = fs__kernels();
    fs_phase phases[FS_MAX_PHASES];
    size_t blocks[FS_MAX_PHASES];
    const size_t n_phases = fs__step_phases(m, phases, blocks);
    /* read once; the stream's tiles, sized at creation, bound it */
    const int max = fs__max_threads(), nt = fs__threads_for(max < (int)s->threads ? max : (int)s->threads, 2.0 * (double)B * (double)(m->gh * hp) * (double)R,
                                   blocks[n_phases - 1]);
    const float *in = x;
    size_t ld_in = I;
    const int residual = m->cfg.residual;
    for (size_t l = 0; l < L; l++) {
        const fs_rnn_unit *u = &m->units[l];
        float *h_new = s->h + h_at(s, l, s->cur ^ 1);
        const int given = l == 0 && gx0, low_rank = m->cfg.w_rank != 0;
        const fs_qscratch qs = fs__qscratch(m, B, s->tile); /* thread 0's tile, free before the step */
        if (low_rank && !given) fs__project(m, k, u, B, in, ld_in, s->xa, s->gx, &qs); /* needs every column at once */
        const float *proj_in = low_rank || given ? NULL : in;
        const fs_step st = {
            .model = m, .k = k, .unit = u, .batch = B, .gx = given ? gx0 : s->gx, .ldgx = m->gates * hp,
            .lengths = NULL, .t = 0, .h_prev = s->h + h_at(s, l, s->cur), .h_new = h_new,
            .c = s->c + l * s->batch * hp, .mid = s->mid, .z = s->z, .t_low = s->t_low,
            .y = l + 1 == L && !residual ? y : NULL, .ldy = R,
        };
        if (nt == 1) {
            step_worker(&st, proj_in, ld_in, s->gx, phases, blocks, n_phases, s->tile, 0, 1);
        } else {
#pragma omp parallel num_threads(nt)
            {
                const int id = FS_THREAD_ID();
                step_worker(&st, proj_in, ld_in, s->gx, phases, blocks, n_phases,
                            s->tile + (size_t)id * fs__tile_floats(m, B), id, FS_THREAD_COUNT());
            }
        }
        if (residual && l) { /* a residual layer outputs h + its input */
            float *out = l + 1 == L ? y : s->res + (l % 2) * B * R;
            for (size_t b = 0; b < B; b++)
                for (size_t c = 0; c < R; c++) out[b * R + c] = h_new[b * m->rp + c] + in[b * ld_in + c];
            in = out;
            ld_in = R;
        } else {
            in = h_new; /* the next layer reads this layer's new h in place */
            ld_in = m->rp;
        }
    }
    s->cur ^= 1;
}

fs_status fs_rnn_stream_step(fs_rnn_stream *s, const float *x, size_t x_count, float *y,
                             size_t y_count) {
    fs__clear_error();
    if (!s || !x || !y) return fs__fail(FS_ERR_NULL_ARG, "stream, x and y must not be NULL");
    const size_t B = s->batch, R = s->model->r, I = (size_t)s->model->cfg.input_size;
    if (x_count != B * I)
        return fs__fail(FS_ERR_SHAPE, "x: expected %zu elements (batch %zu x input_size %zu), got %zu", B * I, B, I, x_count);
    if (y_count != B * R)
        return fs__fail(FS_ERR_SHAPE, "y: expected %zu elements (batch %zu x %zu features), got %zu", B * R, B, R, y_count);
    stream_step(s, x, NULL, B, y);
    return FS_OK;
}

fs_status fs__rnn_stream_step_rows(fs_rnn_stream *s, const float *x, const float *gx0, size_t rows, float *y) {
    fs__clear_error();
    if (!s || (!x && !gx0) || !y) return fs__fail(FS_ERR_NULL_ARG, "stream, x or gx0, and y must not be NULL");
    if (rows < 1 || rows > s->batch)
        return fs__fail(FS_ERR_INVALID_ARG, "rows: expected 1 to the stream's batch %zu, got %zu", s->batch, rows);
    stream_step(s, x, x ? NULL : gx0, rows, y);
    return FS_OK;
}

fs_status fs__rnn_stream_swap_rows(fs_rnn_stream *s, size_t a, size_t b) {
    fs__clear_error();
    if (!s) return fs__fail(FS_ERR_NULL_ARG, "stream must not be NULL");
    if (a >= s->batch || b >= s->batch)
        return fs__fail(FS_ERR_INVALID_ARG, "rows %zu, %zu: expected both below the stream's batch %zu", a, b, s->batch);
    const fs_rnn *m = s->model;
    for (size_t l = 0; l < (size_t)m->cfg.num_layers; l++) {
        float *h = s->h + h_at(s, l, s->cur), *c = s->c + l * s->batch * m->hp;
        for (size_t j = 0; j < m->rp; j++) {
            const float t = h[a * m->rp + j];
            h[a * m->rp + j] = h[b * m->rp + j];
            h[b * m->rp + j] = t;
        }
        for (size_t j = 0; m->cfg.cell == FS_CELL_LSTM && j < m->hp; j++) {
            const float t = c[a * m->hp + j];
            c[a * m->hp + j] = c[b * m->hp + j];
            c[b * m->hp + j] = t;
        }
    }
    return FS_OK;
}

/* State buffers in the stream are [L][B][stride] (h: every other half); callers see [L][B][n]. */
static fs_status check_state_count(const fs_rnn_stream *s, const char *name, size_t n, size_t count) {
    const size_t L = (size_t)s->model->cfg.num_layers;
    if (count != L * s->batch * n)
        return fs__fail(FS_ERR_SHAPE, "%s: expected %zu elements (num_layers %zu x batch %zu x %zu), got %zu",
                        name, L * s->batch * n, L, s->batch, n, count);
    return FS_OK;
}

static void copy_state(const fs_rnn_stream *s, float *states, size_t per_layer, size_t stride, size_t n,
                       float *flat, int to_flat) {
    for (size_t l = 0; l < (size_t)s->model->cfg.num_layers; l++)
        for (size_t b = 0; b < s->batch; b++) {
            float *st = states + l * per_layer + b * stride, *fl = flat + (l * s->batch + b) * n;
            if (to_flat) memcpy(fl, st, n * sizeof(float));
            else memcpy(st, fl, n * sizeof(float));
        }
}

static fs_status check_states(const fs_rnn_stream *s, const void *h, size_t h_count, const void *c,
                              size_t c_count) {
    fs_status st;
    if (!s) return fs__fail(FS_ERR_NULL_ARG, "stream must not be NULL");
    if (c && s->model->cfg.cell != FS_CELL_LSTM)
        return fs__fail(FS_ERR_INVALID_ARG, "c: only an LSTM has a cell state");
    if (h && (st = check_state_count(s, "h", s->model->r, h_count)) != FS_OK) return st;
    if (c && (st = check_state_count(s, "c", (size_t)s->model->cfg.hidden_size, c_count)) != FS_OK) return st;
    return FS_OK;
}

fs_status fs_rnn_stream_get_state(const fs_rnn_stream *s, float *h, size_t h_count, float *c,
                                  size_t c_count) {
    fs__clear_error();
    fs_status st = check_states(s, h, h_count, c, c_count);
    if (st != FS_OK) return st;
    const fs_rnn *m = s->model;
    if (h) copy_state(s, s->h + h_at(s, 0, s->cur), 2 * s->batch * m->rp, m->rp, m->r, h, 1);
    if (c) copy_state(s, s->c, s->batch * m->hp, m->hp, (size_t)m->cfg.hidden_size, c, 1);
    return FS_OK;
}

fs_status fs_rnn_stream_set_state(fs_rnn_stream *s, const float *h, size_t h_count, const float *c,
                                  size_t c_count) {
    fs__clear_error();
    fs_status st = check_states(s, h, h_count, c, c_count);
    if (st != FS_OK) return st;
    const fs_rnn *m = s->model;
    /* copy_state only reads `flat` when to_flat is 0 */
    if (h) copy_state(s, s->h + h_at(s, 0, s->cur), 2 * s->batch * m->rp, m->rp, m->r, (float *)h, 0);
    if (c) copy_state(s, s->c, s->batch * m->hp, m->hp, (size_t)m->cfg.hidden_size, (float *)c, 0);
    return FS_OK;
}
