/* Training: a forward pass that records what backward needs (the tape), and
 * back-propagation through time over it. One thread; no allocation.
 *
 * Forward, per layer and direction: one input-projection GEMM over all T*B
 * rows with the packed kernels, then per step the recurrent product (packed
 * GEMM over all unit blocks) and the cell's recording step (train_cells.c),
 * which saves its activations; h_prev (and c_prev) of every row are saved too.
 *
 * Backward, per layer from the top, per direction, per step (in reverse): the
 * cell's backward turns dh (and dc) into the step's dgates; one packed GEMM
 * adds dgates W_hh into dh, another gives the layer input's gradient dgates
 * W_ih (W_hh, W_ih packed in their natural layout once per call); the step's
 * dgates are copied into time-major panels. After the loop two GEMMs over all
 * rows give [dW_ih^T; db_ih] = [X^T; 1] dgx and [dW_hh^T; db_hh] =
 * [H_prev^T; 1] dgh. Saved arrays follow x's row layout (row of (t, b) =
 * t*B + b, or b*T + t when batch_first).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "rnn.h"
#include "rnn_backward.h"

typedef struct tplan {
    size_t T, B, N, I, H, hp, G, GH, S, D, L, DH;
    int batch_first, lstm;
    /* in floats from the tape's data start */
    size_t len_off, x_off, y_off, hprev_off, cprev_off, act_off;
    size_t gx_off, tile_off, hcur_off, ccur_off;                         /* forward scratch */
    size_t sg_off, sgh_off, pg_off, pgh_off, xt_off, ht_off, pwih_off, /* backward scratch */
        pwhh_off, tmp_off, dh_off, dc_off, dtmp_off, xtmp_off, dbuf_off[2];
    size_t total;
} tplan;

struct fs_rnn_tape {
    const fs_rnn *model;
    float *data;
    size_t capacity; /* floats at data */
    int owned, recorded;
    tplan p;
};

/* Backward GEMMs read their B operand in panels of W = 8*g columns (kernels.h
 * layout with g "gates" per block, so columns stay in natural order): what the
 * kernels run fastest (measured): 16 wide with AVX2 (a 6 x 2 register tile,
 * whole cache lines per pass), 32 with AVX-512 (two zmm), 8 for small sizes.
 * Buffers are sized for the widest, 32. */
#define FS_PW_MAX 32
static size_t panel_g(size_t cols) {
    if (cols >= 32 && fs_active_isa() >= FS_ISA_AVX512) return 4;
    return cols >= 16 ? 2 : 1;
}
static size_t r32(size_t n) { return (n + FS_PW_MAX - 1) / FS_PW_MAX * FS_PW_MAX; }

/* Reserves a*b floats (64-byte aligned) at *cursor. */
static int reserve(size_t *cursor, size_t a, size_t b, size_t *off) {
    const size_t q = FS_ALIGN / sizeof(float);
    size_t n, end;
    if (!fs__mul(a, b, &n) || n > SIZE_MAX - q) return 0;
    n = (n + q - 1) / q * q;
    if (!fs__add(*cursor, n, &end)) return 0;
    *off = *cursor;
    *cursor = end;
    return 1;
}

static size_t max2(size_t a, size_t b) { return a > b ? a : b; }

static fs_status make_plan(const fs_rnn *m, int32_t seq_len, int32_t batch, tplan *p) {
    const fs_cell_train *ct = fs__cell_train(m);
    if (!ct)
        return fs__fail(FS_ERR_UNSUPPORTED, "training: backward for this cell configuration "
                                            "(cell %d with its variants) is not implemented yet",
                        (int)m->cfg.cell);
    if (seq_len < 1) return fs__fail(FS_ERR_INVALID_ARG, "seq_len: expected >= 1, got %d", (int)seq_len);
    if (batch < 1) return fs__fail(FS_ERR_INVALID_ARG, "batch: expected >= 1, got %d", (int)batch);
    memset(p, 0, sizeof *p);
    p->T = (size_t)seq_len, p->B = (size_t)batch;
    p->I = (size_t)m->cfg.input_size, p->H = (size_t)m->cfg.hidden_size, p->hp = m->hp;
    p->G = m->gates, p->GH = p->G * p->H, p->S = ct->slots;
    p->D = m->dirs, p->L = (size_t)m->cfg.num_layers, p->DH = p->D * p->H;
    p->lstm = m->cfg.cell == FS_CELL_LSTM;
    const size_t T = p->T, B = p->B, H = p->H, GH = p->GH, D = p->D, L = p->L, U = L * D;
    size_t N = 0, UN = 0, LN = 0, cur = 0, fwd, bwd, unused;
    int ok = fs__mul(T, B, &N) && fs__mul(U, N, &UN) && fs__mul(L - 1, N, &LN);
    p->N = N;
    /* the record */
    ok = ok && reserve(&cur, B, 1, &p->len_off);
    ok = ok && reserve(&cur, N, p->I, &p->x_off);
    ok = ok && reserve(&cur, LN, p->DH, &p->y_off);
    ok = ok && reserve(&cur, UN, H, &p->hprev_off);
    ok = ok && reserve(&cur, p->lstm ? UN : 0, H, &p->cprev_off);
    ok = ok && reserve(&cur, UN, p->S * H, &p->act_off);
    /* forward scratch */
    fwd = cur;
    ok = ok && reserve(&fwd, N, p->G * p->hp, &p->gx_off);
    ok = ok && reserve(&fwd, B, p->G * p->hp, &p->tile_off);
    ok = ok && reserve(&fwd, B, p->hp, &p->hcur_off);
    ok = ok && reserve(&fwd, B, p->hp, &p->ccur_off);
    /* backward scratch, over the same floats */
    const size_t in_max = max2(p->I, L > 1 ? p->DH : 0), ghw = r32(GH);
    bwd = cur;
    ok = ok && reserve(&bwd, B, GH, &p->sg_off);                        /* one step's dgx */
    ok = ok && reserve(&bwd, ct->split_dgh ? B : 0, GH, &p->sgh_off);   /* ... and dgh */
    ok = ok && reserve(&bwd, ghw, N, &p->pg_off);                       /* all dgx, panels */
    ok = ok && reserve(&bwd, ct->split_dgh ? ghw : 0, N, &p->pgh_off);
    ok = ok && reserve(&bwd, in_max + 1, N, &p->xt_off);                /* [X^T; 1] */
    ok = ok && reserve(&bwd, H + 1, N, &p->ht_off);                     /* [H_prev^T; 1] */
    ok = ok && reserve(&bwd, r32(in_max), GH, &p->pwih_off);            /* W_ih, panels */
    ok = ok && reserve(&bwd, r32(H), GH, &p->pwhh_off);                 /* W_hh, panels */
    ok = ok && reserve(&bwd, max2(in_max, H) + 1, ghw, &p->tmp_off);    /* [dW^T; db] */
    ok = ok && reserve(&bwd, B, H, &p->dh_off);
    ok = ok && reserve(&bwd, B, H, &p->dc_off);
    ok = ok && reserve(&bwd, B, r32(H), &p->dtmp_off);
    ok = ok && reserve(&bwd, B, r32(in_max), &p->xtmp_off);
    for (int i = 0; i < 2; i++) ok = ok && reserve(&bwd, L > 1 ? N : 0, p->DH, &p->dbuf_off[i]);
    p->total = max2(fwd, bwd);
    ok = ok && fs__mul(p->total, sizeof(float), &unused) && unused <= SIZE_MAX - 2 * FS_ALIGN;
    if (!ok)
        return fs__fail(FS_ERR_NOMEM, "tape size overflows for seq_len %d, batch %d", (int)seq_len,
                        (int)batch);
    return FS_OK;
}

/* ---- the tape ---------------------------------------------------------------------- */

static size_t header_bytes(void) { return fs__align_up(sizeof(struct fs_rnn_tape)); }

fs_status fs_rnn_tape_size(const fs_rnn *model, int32_t seq_len, int32_t batch, size_t *bytes_out) {
    fs__clear_error();
    if (!model || !bytes_out) return fs__fail(FS_ERR_NULL_ARG, "model and bytes_out must not be NULL");
    tplan p;
    fs_status st = make_plan(model, seq_len, batch, &p);
    if (st != FS_OK) return st;
    *bytes_out = header_bytes() + p.total * sizeof(float);
    return FS_OK;
}

fs_status fs_rnn_tape_init(const fs_rnn *model, int32_t seq_len, int32_t batch, void *buffer,
                           size_t buffer_bytes, fs_rnn_tape **out) {
    size_t need;
    fs_status st = fs_rnn_tape_size(model, seq_len, batch, &need);
    if (st != FS_OK) return st;
    if (!buffer || !out) return fs__fail(FS_ERR_NULL_ARG, "buffer and out must not be NULL");
    *out = NULL;
    if ((uintptr_t)buffer % FS_ALIGN != 0)
        return fs__fail(FS_ERR_INVALID_ARG, "buffer: expected %d-byte alignment", FS_ALIGN);
    if (buffer_bytes < need)
        return fs__fail(FS_ERR_SHAPE, "buffer: expected at least %zu bytes, got %zu", need, buffer_bytes);
    fs_rnn_tape *tp = buffer;
    memset(tp, 0, sizeof *tp);
    tp->model = model;
    tp->data = (float *)((char *)buffer + header_bytes());
    tp->capacity = (buffer_bytes - header_bytes()) / sizeof(float);
    *out = tp;
    return FS_OK;
}

fs_status fs_rnn_tape_create(const fs_rnn *model, int32_t seq_len, int32_t batch, fs_rnn_tape **out) {
    size_t need;
    fs__clear_error();
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    *out = NULL;
    fs_status st = fs_rnn_tape_size(model, seq_len, batch, &need);
    if (st != FS_OK) return st;
    void *mem = fs__alloc(need);
    if (!mem) return fs__fail(FS_ERR_NOMEM, "out of memory for a %zu-byte tape", need);
    st = fs_rnn_tape_init(model, seq_len, batch, mem, need, out);
    if (st != FS_OK) {
        fs__free(mem);
        return st;
    }
    (*out)->owned = 1;
    return FS_OK;
}

void fs_rnn_tape_free(fs_rnn_tape *tape) {
    if (tape && tape->owned) fs__free(tape);
}

/* ---- shared helpers ------------------------------------------------------------------ */

static size_t row_of(const tplan *p, size_t t, size_t b) { return p->batch_first ? b * p->T + t : t * p->B + b; }
static const int32_t *lengths_of(const fs_rnn_tape *tp) {
    return tp->p.len_off != SIZE_MAX ? (const int32_t *)(tp->data + tp->p.len_off) : NULL;
}
static int active(const int32_t *len, size_t t, size_t b) { return !len || t < (size_t)len[b]; }

/* src [K][cols] (row stride ld) -> B-operand panels of W = 8*g columns for the
 * kernels' gemm: dst[(jb * k_total + k_off + k) * W + l] = src[k][jb*W + l],
 * zero past cols. */
static void pack_panels(const float *src, size_t K, size_t cols, size_t ld, size_t g, float *dst,
                        size_t k_total, size_t k_off) {
    const size_t W = g * FS_NB, nb = (cols + W - 1) / W;
    for (size_t jb = 0; jb < nb; jb++) {
        const size_t j0 = jb * W, w = cols - j0 < W ? cols - j0 : W;
        float *d = dst + (jb * k_total + k_off) * W;
        for (size_t k = 0; k < K; k++) {
            memcpy(d + k * W, src + k * ld + j0, w * sizeof(float));
            if (w < W) memset(d + k * W + w, 0, (W - w) * sizeof(float));
        }
    }
}

/* The B rows of one step ([B][cols], row stride ld) into rows [m0, m0 + B) of
 * the panels of an [N][cols] matrix (as pack_panels, k_total = N): one
 * contiguous run of B*W floats per panel. */
static void step_to_panels(const float *src, size_t B, size_t cols, size_t ld, size_t g, float *dst,
                           size_t N, size_t m0) {
    const size_t W = g * FS_NB;
    for (size_t j0 = 0, jb = 0; j0 < cols; j0 += W, jb++) {
        const size_t w = cols - j0 < W ? cols - j0 : W;
        float *d = dst + (jb * N + m0) * W;
        for (size_t b = 0; b < B; b++, d += W) {
            memcpy(d, src + b * ld + j0, w * sizeof(float));
            if (w < W) memset(d + w, 0, (W - w) * sizeof(float));
        }
    }
}

/* out[m][cols_w] = a[m][N] (row stride lda) times the panels pk of a [N][cols]
 * matrix, one kernel call per panel: the kernel's row loop then runs inside a
 * panel, which stays in cache while the long A rows stream (N is T*B: the
 * kernel's own order, panels inside row chunks, would stream all of pk per chunk). */
static void gemm_panels(const fs_kernels *k, size_t m, size_t N, const float *a, size_t lda,
                        const float *pk, size_t cols, size_t g, float *out) {
    const size_t W = g * FS_NB, cols_w = (cols + W - 1) / W * W;
    for (size_t jb = 0; jb < cols_w / W; jb++)
        k->gemm(m, N, a, lda, pk + jb * N * W, g, 1, NULL, out + jb * W, cols_w);
}

/* Rows of an [N][cols] array in x's layout (stride ld) transposed into time-major
 * columns: dst[c][t*B + b] = src[row_of(t, b)][c], 16 x 16 tiles; with `ones`,
 * one more row dst[cols][*] = 1 (a GEMM with it also sums over rows). The
 * weight-gradient GEMMs index rows this way, matching step_to_panels. */
static void transpose_tm(const tplan *p, const float *src, size_t cols, size_t ld, float *dst, int ones) {
    const size_t N = p->N;
    for (size_t m0 = 0; m0 < N; m0 += 16) {
        const size_t m1 = m0 + 16 < N ? m0 + 16 : N;
        const float *rows[16];
        for (size_t m = m0; m < m1; m++) rows[m - m0] = src + row_of(p, m / p->B, m % p->B) * ld;
        for (size_t c0 = 0; c0 < cols; c0 += 16) {
            const size_t c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (size_t c = c0; c < c1; c++)
                for (size_t m = m0; m < m1; m++) dst[c * N + m] = rows[m - m0][c];
        }
    }
    if (ones)
        for (size_t m = 0; m < N; m++) dst[cols * N + m] = 1.0f;
}

static fs_status check_count(const char *name, const void *ptr, size_t given, size_t expected,
                             const char *shape) {
    if (ptr && given != expected)
        return fs__fail(FS_ERR_SHAPE, "%s: expected %zu elements %s, got %zu", name, expected, shape, given);
    return FS_OK;
}

static fs_status check_tape(const fs_rnn *m, const fs_rnn_tape *tp) {
    if (!m || !tp) return fs__fail(FS_ERR_NULL_ARG, "model and tape must not be NULL");
    if (tp->model != m)
        return fs__fail(FS_ERR_INVALID_ARG, "tape: made for another model");
    return FS_OK;
}

/* ---- forward with record ------------------------------------------------------------ */

static fs_status check_seq_args(const fs_rnn *m, const fs_seq_args *a, const tplan *p) {
    char shape[160];
    const size_t T = p->T, B = p->B, LD = p->L * p->D, S = LD * B * p->H;
    fs_status st;
    if (!a->x || !a->y) return fs__fail(FS_ERR_NULL_ARG, "x and y must not be NULL");
    if (a->batch_first != 0 && a->batch_first != 1)
        return fs__fail(FS_ERR_INVALID_ARG, "batch_first: expected 0 or 1, got %d", (int)a->batch_first);
    snprintf(shape, sizeof shape, "(seq_len %zu x batch %zu x input_size %zu)", T, B, p->I);
    if ((st = check_count("x", a->x, a->x_count, T * B * p->I, shape)) != FS_OK) return st;
    snprintf(shape, sizeof shape, "(seq_len %zu x batch %zu x %zu directions*hidden)", T, B, p->DH);
    if ((st = check_count("y", a->y, a->y_count, T * B * p->DH, shape)) != FS_OK) return st;
    snprintf(shape, sizeof shape, "(%zu layers*directions x batch %zu x hidden %zu)", LD, B, p->H);
    if ((st = check_count("h0", a->h0, a->h0_count, S, shape)) != FS_OK) return st;
    if ((st = check_count("h_n", a->h_n, a->h_n_count, S, shape)) != FS_OK) return st;
    if (m->cfg.cell != FS_CELL_LSTM && (a->c0 || a->c_n))
        return fs__fail(FS_ERR_INVALID_ARG, "c0 / c_n: only an LSTM has a cell state");
    if ((st = check_count("c0", a->c0, a->c0_count, S, shape)) != FS_OK) return st;
    if ((st = check_count("c_n", a->c_n, a->c_n_count, S, shape)) != FS_OK) return st;
    if (a->lengths) {
        if (a->lengths_count != B)
            return fs__fail(FS_ERR_SHAPE, "lengths: expected %zu elements (one per sequence), got %zu", B,
                            a->lengths_count);
        for (size_t b = 0; b < B; b++)
            if (a->lengths[b] < 1 || (size_t)a->lengths[b] > T)
                return fs__fail(FS_ERR_INVALID_ARG, "lengths[%zu]: expected 1..%zu, got %d", b, T,
                                (int)a->lengths[b]);
    }
    if (a->x < a->y + a->y_count && a->y < a->x + a->x_count)
        return fs__fail(FS_ERR_INVALID_ARG, "x and y overlap: y must be a separate buffer");
    return FS_OK;
}

static void load_state(const float *src, size_t B, size_t H, size_t hp, float *dst) {
    memset(dst, 0, B * hp * sizeof(float));
    if (src)
        for (size_t b = 0; b < B; b++) memcpy(dst + b * hp, src + b * H, H * sizeof(float));
}

static void store_state(const float *src, size_t B, size_t H, size_t hp, float *dst) {
    if (dst)
        for (size_t b = 0; b < B; b++) memcpy(dst + b * H, src + b * hp, H * sizeof(float));
}

/* Layer l, direction d: rows of `in` ([N][in_f]) to columns [d*H, d*H + H) of out ([N][DH]). */
static void record_unit(const fs_rnn *m, const fs_cell_train *ct, fs_rnn_tape *tp, size_t l,
                        size_t d, const float *in, float *out, const fs_seq_args *a) {
    const tplan *p = &tp->p;
    const fs_kernels *k = fs__kernels();
    const size_t ui = l * p->D + d, T = p->T, B = p->B, H = p->H, hp = p->hp, G = p->G, N = p->N;
    const size_t nblk = hp / FS_NB, state_at = ui * B * H, S = p->S;
    const fs_rnn_unit *u = &m->units[ui];
    const fs_cell_ctx cx = {m, u, H, G};
    const int32_t *len = lengths_of(tp);
    float *ws = tp->data, *gx = ws + p->gx_off, *tile = ws + p->tile_off;
    float *h = ws + p->hcur_off, *c = ws + p->ccur_off;
    float *hprev = ws + p->hprev_off + ui * N * H, *cprev = ws + p->cprev_off + ui * N * H;
    float *act = ws + p->act_off + ui * N * S * H;
    const float *bias_h = m->cfg.cell == FS_CELL_GRU ? u->bias_h : NULL;

    k->gemm(N, u->in_size, in, u->in_size, u->w_ih_packed, G, nblk, u->bias_x, gx, G * hp);
    load_state(a->h0 ? a->h0 + state_at : NULL, B, H, hp, h);
    load_state(a->c0 ? a->c0 + state_at : NULL, B, H, hp, c);
    for (size_t s = 0; s < T; s++) {
        const size_t t = d ? T - 1 - s : s;
        k->gemm(B, H, h, hp, u->w_hh_packed, G, nblk, bias_h, tile, G * hp);
        for (size_t b = 0; b < B; b++) {
            const size_t n = row_of(p, t, b);
            float *hb = h + b * hp, *cb = c + b * hp, *yb = out + n * p->DH + d * H;
            memcpy(hprev + n * H, hb, H * sizeof(float));
            if (p->lstm) memcpy(cprev + n * H, cb, H * sizeof(float));
            if (!active(len, t, b)) {
                memset(act + n * S * H, 0, S * H * sizeof(float));
                memset(yb, 0, H * sizeof(float));
                continue;
            }
            ct->forward(&cx, gx + n * G * hp, tile + b * G * hp, hb, cb, act + n * S * H);
            memcpy(yb, hb, H * sizeof(float));
        }
    }
    store_state(h, B, H, hp, a->h_n ? a->h_n + state_at : NULL);
    if (p->lstm) store_state(c, B, H, hp, a->c_n ? a->c_n + state_at : NULL);
}

fs_status fs_rnn_train_forward(const fs_rnn *model, const fs_seq_args *args, fs_rnn_tape *tape) {
    fs__clear_error();
    fs_status st = check_tape(model, tape);
    if (st != FS_OK) return st;
    if (!args) return fs__fail(FS_ERR_NULL_ARG, "args must not be NULL");
    tplan p;
    if ((st = make_plan(model, args->seq_len, args->batch, &p)) != FS_OK) return st;
    p.batch_first = args->batch_first;
    if ((st = check_seq_args(model, args, &p)) != FS_OK) return st;
    if (p.total > tape->capacity)
        return fs__fail(FS_ERR_SHAPE, "tape: seq_len %d, batch %d need %zu bytes, the tape holds %zu",
                        (int)args->seq_len, (int)args->batch, header_bytes() + p.total * sizeof(float),
                        header_bytes() + tape->capacity * sizeof(float));
    const fs_cell_train *ct = fs__cell_train(model);
    if (!args->lengths) p.len_off = SIZE_MAX;
    tape->p = p;
    tape->recorded = 0;
    float *ws = tape->data;
    if (args->lengths) memcpy(ws + p.len_off, args->lengths, p.B * sizeof(int32_t));
    memcpy(ws + p.x_off, args->x, p.N * p.I * sizeof(float));
    const float *in = ws + p.x_off;
    for (size_t l = 0; l < p.L; l++) {
        float *out = l + 1 == p.L ? args->y : ws + p.y_off + l * p.N * p.DH;
        for (size_t d = 0; d < p.D; d++) record_unit(model, ct, tape, l, d, in, out, args);
        in = out;
    }
    tape->recorded = 1;
    return FS_OK;
}

/* ---- backward ------------------------------------------------------------------------ */

/* Flat parameter order: layer, direction, then parameter in fs_param order,
 * each present parameter in PyTorch layout. */
static fs_status param_offset(const fs_rnn *m, size_t layer, size_t dir, fs_param want,
                              size_t *off_out, size_t *total_out) {
    size_t off = 0, found = SIZE_MAX;
    for (size_t l = 0; l < (size_t)m->cfg.num_layers; l++)
        for (size_t d = 0; d < m->dirs; d++)
            for (int q = 0; q < FS_PARAM_COUNT; q++) {
                if (!m->units[l * m->dirs + d].raw[q]) continue;
                size_t rows = 0, cols = 0;
                fs_status st = fs_rnn_param_shape(m, (int32_t)l, (int32_t)d, (fs_param)q, &rows, &cols);
                if (st != FS_OK) return st;
                if (l == layer && d == dir && q == (int)want) found = off;
                off += rows * cols;
            }
    if (off_out) *off_out = found;
    if (total_out) *total_out = off;
    return FS_OK;
}

fs_status fs_rnn_param_count(const fs_rnn *model, size_t *count_out) {
    fs__clear_error();
    if (!model || !count_out) return fs__fail(FS_ERR_NULL_ARG, "model and count_out must not be NULL");
    return param_offset(model, 0, 0, FS_PARAM_COUNT, NULL, count_out);
}

fs_status fs_rnn_param_offset(const fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                              size_t *offset_out) {
    fs__clear_error();
    if (!model || !offset_out) return fs__fail(FS_ERR_NULL_ARG, "model and offset_out must not be NULL");
    size_t rows, cols, off = SIZE_MAX;
    fs_status st = fs_rnn_param_shape(model, layer, direction, param, &rows, &cols);
    if (st != FS_OK) return st;
    if ((st = param_offset(model, (size_t)layer, (size_t)direction, param, &off, NULL)) != FS_OK) return st;
    if (off == SIZE_MAX)
        return fs__fail(FS_ERR_INVALID_ARG, "param %d: not a parameter of this model", (int)param);
    *offset_out = off;
    return FS_OK;
}

static fs_status check_grad_args(const fs_rnn *m, const fs_grad_args *g, const tplan *p, size_t n_params) {
    char shape[160];
    const size_t T = p->T, B = p->B, LD = p->L * p->D, S = LD * B * p->H;
    fs_status st;
    if (g->accumulate != 0 && g->accumulate != 1)
        return fs__fail(FS_ERR_INVALID_ARG, "accumulate: expected 0 or 1, got %d", (int)g->accumulate);
    snprintf(shape, sizeof shape, "(seq_len %zu x batch %zu x %zu directions*hidden)", T, B, p->DH);
    if ((st = check_count("grad_y", g->grad_y, g->grad_y_count, T * B * p->DH, shape)) != FS_OK) return st;
    snprintf(shape, sizeof shape, "(seq_len %zu x batch %zu x input_size %zu)", T, B, p->I);
    if ((st = check_count("grad_x", g->grad_x, g->grad_x_count, T * B * p->I, shape)) != FS_OK) return st;
    snprintf(shape, sizeof shape, "(%zu layers*directions x batch %zu x hidden %zu)", LD, B, p->H);
    if ((st = check_count("grad_h_n", g->grad_h_n, g->grad_h_n_count, S, shape)) != FS_OK) return st;
    if ((st = check_count("grad_h0", g->grad_h0, g->grad_h0_count, S, shape)) != FS_OK) return st;
    if (m->cfg.cell != FS_CELL_LSTM && (g->grad_c_n || g->grad_c0))
        return fs__fail(FS_ERR_INVALID_ARG, "grad_c_n / grad_c0: only an LSTM has a cell state");
    if ((st = check_count("grad_c_n", g->grad_c_n, g->grad_c_n_count, S, shape)) != FS_OK) return st;
    if ((st = check_count("grad_c0", g->grad_c0, g->grad_c0_count, S, shape)) != FS_OK) return st;
    if ((st = check_count("grad_params", g->grad_params, g->grad_params_count, n_params,
                          "(fs_rnn_param_count)")) != FS_OK)
        return st;
    return FS_OK;
}

/* From t = [dW^T; db] ([cols + bias][ldt], the GEMM's output): dw[r][c] += t[c][r]
 * for r < rows, c < cols, and db[r] += t[cols][r] when db. */
static void add_transposed(float *dw, float *db, const float *t, size_t rows, size_t cols, size_t ldt) {
    for (size_t r0 = 0; r0 < rows; r0 += 16)
        for (size_t c0 = 0; c0 < cols; c0 += 16) {
            const size_t r1 = r0 + 16 < rows ? r0 + 16 : rows, c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (size_t r = r0; r < r1; r++)
                for (size_t c = c0; c < c1; c++) dw[r * cols + c] += t[c * ldt + r];
        }
    if (db)
        for (size_t r = 0; r < rows; r++) db[r] += t[cols * ldt + r];
}

/* Layer l, direction d: the time loop, then its parameter gradients. Per step,
 * the cell's backward writes the step's dgates (B rows) into a small buffer
 * that feeds dh += dgh W_hh, the layer input's gradient dgx W_ih (added into
 * dx, rows in x's layout; NULL: not wanted) and, copied into time-major panels,
 * the weight-gradient GEMMs after the loop. The tape's xt holds the layer
 * input transposed (time-major, ones row when the model has biases). */
static fs_status backward_unit(const fs_rnn *m, const fs_cell_train *ct, fs_rnn_tape *tp, size_t l,
                               size_t d, const float *dout, float *dx, const fs_grad_args *g) {
    const tplan *p = &tp->p;
    const fs_kernels *k = fs__kernels();
    const fs_rnn_unit *u = &m->units[l * p->D + d];
    const size_t ui = l * p->D + d, T = p->T, B = p->B, H = p->H, N = p->N, GH = p->GH, S = p->S;
    const size_t state_at = ui * B * H, in_f = u->in_size, sp = ct->split_dgh;
    const size_t gg = panel_g(GH), ghw = (GH + gg * FS_NB - 1) / (gg * FS_NB) * (gg * FS_NB);
    const size_t hg = panel_g(H), hw = (H + hg * FS_NB - 1) / (hg * FS_NB) * (hg * FS_NB);
    const size_t ig = panel_g(in_f), iw = (in_f + ig * FS_NB - 1) / (ig * FS_NB) * (ig * FS_NB);
    const int want_w = g->grad_params != NULL, bias = m->cfg.bias;
    const fs_cell_ctx cx = {m, u, H, p->G};
    const int32_t *len = lengths_of(tp);
    float *ws = tp->data;
    const float *hprev = ws + p->hprev_off + ui * N * H, *cprev = ws + p->cprev_off + ui * N * H;
    const float *act = ws + p->act_off + ui * N * S * H;
    float *sg = ws + p->sg_off, *sgh = sp ? ws + p->sgh_off : sg;
    float *pg = ws + p->pg_off, *pgh = sp ? ws + p->pgh_off : pg;
    float *dh = ws + p->dh_off, *dc = ws + p->dc_off, *dtmp = ws + p->dtmp_off, *xtmp = ws + p->xtmp_off;
    float *pwhh = ws + p->pwhh_off, *pwih = ws + p->pwih_off, *tmp = ws + p->tmp_off;

    pack_panels(u->raw[FS_PARAM_WEIGHT_HH], GH, H, H, hg, pwhh, GH, 0);
    if (dx) pack_panels(u->raw[FS_PARAM_WEIGHT_IH], GH, in_f, in_f, ig, pwih, GH, 0);
    if (g->grad_h_n) memcpy(dh, g->grad_h_n + state_at, B * H * sizeof(float));
    else memset(dh, 0, B * H * sizeof(float));
    if (p->lstm && g->grad_c_n) memcpy(dc, g->grad_c_n + state_at, B * H * sizeof(float));
    else memset(dc, 0, B * H * sizeof(float));

    for (size_t s = T; s-- > 0;) {
        const size_t t = d ? T - 1 - s : s;
        for (size_t b = 0; b < B; b++) {
            const size_t n = row_of(p, t, b);
            float *dhb = dh + b * H;
            if (!active(len, t, b)) { /* a finished sequence: zero dgates, dh and dc pass */
                memset(sg + b * GH, 0, GH * sizeof(float));
                if (sp) memset(sgh + b * GH, 0, GH * sizeof(float));
                continue;
            }
            if (dout) {
                const float *dy = dout + n * p->DH + d * H;
                for (size_t j = 0; j < H; j++) dhb[j] += dy[j];
            }
            ct->backward(&cx, act + n * S * H, hprev + n * H, p->lstm ? cprev + n * H : NULL, dhb,
                         dc + b * H, sg + b * GH, sgh + b * GH, NULL);
        }
        /* dh += dgh W_hh for all B rows at once (finished rows carry zero dgates) */
        k->gemm(B, GH, sgh, GH, pwhh, hg, hw / (hg * FS_NB), NULL, dtmp, hw);
        for (size_t b = 0; b < B; b++)
            for (size_t j = 0; j < H; j++) dh[b * H + j] += dtmp[b * hw + j];
        if (dx) { /* the first direction sets dx, the second adds */
            k->gemm(B, GH, sg, GH, pwih, ig, iw / (ig * FS_NB), NULL, xtmp, iw);
            for (size_t b = 0; b < B; b++) {
                float *row = dx + row_of(p, t, b) * in_f;
                const float *src = xtmp + b * iw;
                if (d == 0) memcpy(row, src, in_f * sizeof(float));
                else
                    for (size_t j = 0; j < in_f; j++) row[j] += src[j];
            }
        }
        if (want_w) {
            step_to_panels(sg, B, GH, GH, gg, pg, N, t * B);
            if (sp) step_to_panels(sgh, B, GH, GH, gg, pgh, N, t * B);
        }
    }
    if (g->grad_h0) memcpy(g->grad_h0 + state_at, dh, B * H * sizeof(float));
    if (g->grad_c0) memcpy(g->grad_c0 + state_at, dc, B * H * sizeof(float));

    if (!want_w) return FS_OK;
    size_t o_wih, o_whh, o_bih = 0, o_bhh = 0;
    fs_status st = param_offset(m, l, d, FS_PARAM_WEIGHT_IH, &o_wih, NULL);
    if (st == FS_OK) st = param_offset(m, l, d, FS_PARAM_WEIGHT_HH, &o_whh, NULL);
    if (st == FS_OK && bias) st = param_offset(m, l, d, FS_PARAM_BIAS_IH, &o_bih, NULL);
    if (st == FS_OK && bias) st = param_offset(m, l, d, FS_PARAM_BIAS_HH, &o_bhh, NULL);
    if (st != FS_OK) return st;
    float *gp = g->grad_params;
    /* [dW_ih^T; db_ih] = [X^T; 1] dgx,  [dW_hh^T; db_hh] = [H_prev^T; 1] dgh */
    gemm_panels(k, in_f + (size_t)bias, N, ws + p->xt_off, N, pg, GH, gg, tmp);
    add_transposed(gp + o_wih, bias ? gp + o_bih : NULL, tmp, GH, in_f, ghw);
    transpose_tm(p, hprev, H, H, ws + p->ht_off, bias);
    gemm_panels(k, H + (size_t)bias, N, ws + p->ht_off, N, pgh, GH, gg, tmp);
    add_transposed(gp + o_whh, bias ? gp + o_bhh : NULL, tmp, GH, H, ghw);
    return FS_OK;
}

fs_status fs_rnn_backward(const fs_rnn *model, fs_rnn_tape *tape, const fs_grad_args *args) {
    fs__clear_error();
    fs_status st = check_tape(model, tape);
    if (st != FS_OK) return st;
    if (!args) return fs__fail(FS_ERR_NULL_ARG, "args must not be NULL");
    if (!tape->recorded)
        return fs__fail(FS_ERR_INVALID_ARG, "tape: holds no forward pass (run fs_rnn_train_forward first)");
    size_t n_params;
    if ((st = param_offset(model, 0, 0, FS_PARAM_COUNT, NULL, &n_params)) != FS_OK) return st;
    const tplan *p = &tape->p;
    if ((st = check_grad_args(model, args, p, n_params)) != FS_OK) return st;
    const fs_cell_train *ct = fs__cell_train(model);
    float *ws = tape->data;
    const size_t N = p->N, DH = p->DH;
    if (args->grad_params && !args->accumulate) memset(args->grad_params, 0, n_params * sizeof(float));

    for (size_t l = p->L; l-- > 0;) {
        const size_t in_f = l ? DH : p->I;
        const float *x = l ? ws + p->y_off + (l - 1) * N * DH : ws + p->x_off;
        const float *dout = l + 1 == p->L ? args->grad_y : ws + p->dbuf_off[l % 2];
        float *dx = l ? ws + p->dbuf_off[(l - 1) % 2] : args->grad_x;
        if (args->grad_params) transpose_tm(p, x, in_f, in_f, ws + p->xt_off, model->cfg.bias);
        for (size_t d = 0; d < p->D; d++)
            if ((st = backward_unit(model, ct, tape, l, d, dout, dx, args)) != FS_OK) return st;
    }
    return FS_OK;
}

fs_status fs_rnn_tape_get_state(const fs_rnn_tape *tape, int32_t t, float *h, size_t h_count,
                                float *c, size_t c_count) {
    fs__clear_error();
    if (!tape) return fs__fail(FS_ERR_NULL_ARG, "tape must not be NULL");
    if (!tape->recorded)
        return fs__fail(FS_ERR_INVALID_ARG, "tape: holds no forward pass (run fs_rnn_train_forward first)");
    const tplan *p = &tape->p;
    if (p->D != 1)
        return fs__fail(FS_ERR_UNSUPPORTED, "tape state: a bidirectional model has no single state at a step");
    if (t < 0 || (size_t)t >= p->T)
        return fs__fail(FS_ERR_INVALID_ARG, "t: expected 0..%zu, got %d", p->T - 1, (int)t);
    char shape[120];
    const size_t S = p->L * p->B * p->H;
    snprintf(shape, sizeof shape, "(%zu layers x batch %zu x hidden %zu)", p->L, p->B, p->H);
    fs_status st = check_count("h", h, h_count, S, shape);
    if (st != FS_OK) return st;
    if (!p->lstm && c) return fs__fail(FS_ERR_INVALID_ARG, "c: only an LSTM has a cell state");
    if ((st = check_count("c", c, c_count, S, shape)) != FS_OK) return st;
    for (size_t l = 0; l < p->L; l++)
        for (size_t b = 0; b < p->B; b++) {
            const size_t n = row_of(p, (size_t)t, b), at = (l * p->B + b) * p->H;
            if (h) memcpy(h + at, tape->data + p->hprev_off + (l * p->N + n) * p->H, p->H * sizeof(float));
            if (c) memcpy(c + at, tape->data + p->cprev_off + (l * p->N + n) * p->H, p->H * sizeof(float));
        }
    return FS_OK;
}
