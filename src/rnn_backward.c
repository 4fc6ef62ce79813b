/* Training: a forward pass that records what backward needs (the tape), and
 * back-propagation through time over it. One thread; no allocation.
 *
 * Forward, per layer and direction: one input-projection GEMM over all T*B
 * rows with the packed kernels, then per step the recurrent product (packed
 * GEMM over all unit blocks) and the cell's recording step (train_cells.c),
 * which saves its activations; h_prev (and c_prev) of every row are saved too.
 * A low-rank W or U runs as two products; an LSTM projection h = W_hr m runs
 * after the cells, m saved.
 *
 * Backward, per layer from the top, per direction, per step (in reverse): the
 * cell's backward turns dh (and dc) into the step's dgates; one packed GEMM
 * adds dgates W_hh into dh, another gives the layer input's gradient dgates
 * W_ih (W_hh, W_ih packed in their natural layout once per call); the step's
 * dgates are copied into time-major panels. After the loop two GEMMs over all
 * rows give [dW_ih^T; db_ih] = [X^T; 1] dgx and [dW_hh^T; db_hh] =
 * [H_prev^T; 1] dgh. A low-rank map W_b W_a (FastRNN / FastGRNN) runs each of
 * these through its intermediate (`side`); the projection adds dm = dh W_hr
 * before the cell and d W_hr = dh^T m; reset-before GRU's W_hn rows take
 * dn^T (r h). Saved arrays follow x's row layout (row of (t, b) = t*B + b, or
 * b*T + t when batch_first).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "rnn.h"
#include "rnn_args.h"
#include "rnn_backward.h"
#include "rnn_step.h"

/* Scratch of one side of the gate pre-activations (the input map W, or the
 * recurrent map U): natural-layout panels of W, or of W_a and W_b when low
 * rank, and for low rank the step's d mid = dG W_b, its panels over all rows,
 * and mid = op W_a^T over all rows (row layout, then transposed). */
typedef struct sideplan {
    size_t pk_w, pk_a, pk_b, mtmp, pmid, midrow, midt;
} sideplan;

typedef struct tplan {
    size_t T, B, N, I, H, R, hp, rp, G, GH, KH, S, D, L, DR, E, P;
    int batch_first, lstm, tbias;
    /* in floats from the tape's data start */
    size_t len_off, x_off, y_off, hprev_off, cprev_off, act_off, mid_off, work_off; /* record */
    size_t gx_off, xa_off, tile_off, tlow_off, hcur_off, ccur_off, mcur_off;      /* forward */
    size_t sg_off, sgh_off, pg_off, pgh_off, xt_off, ht_off, tmp_off, dh_off, dc_off, /* backward */
        dtmp_off, xtmp_off, extra_off, pwhr_off, dm_off, dhp_off, pdh_off, dbuf_off[2];
    sideplan side[2]; /* 0: input map, 1: recurrent map */
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

/* Padded width of panels over `cols` columns, and their g (see panel_g). */
static size_t panel_w(size_t cols, size_t *g) {
    *g = panel_g(cols);
    return (cols + *g * FS_NB - 1) / (*g * FS_NB) * (*g * FS_NB);
}

/* A side's scratch: operand of up to K features, `out` gate rows, rank (0: full). */
static int reserve_side(size_t *cur, size_t K, size_t out, size_t rank, size_t B, size_t N,
                        sideplan *sp) {
    const size_t lr = rank ? 1 : 0;
    return reserve(cur, lr ? 0 : r32(K), out, &sp->pk_w) && reserve(cur, r32(K), rank, &sp->pk_a) &&
           reserve(cur, r32(rank), out, &sp->pk_b) && reserve(cur, lr * B, r32(rank), &sp->mtmp) &&
           reserve(cur, r32(rank), lr * N, &sp->pmid) && reserve(cur, N, fs__round8(rank), &sp->midrow) &&
           reserve(cur, rank, N, &sp->midt);
}

static fs_status make_plan(const fs_rnn *m, int32_t seq_len, int32_t batch, tplan *p) {
    const fs_cell_train *ct = fs__cell_train(m);
    const fs_rnn_config *cf = &m->cfg;
    if (!ct)
        return fs__fail(FS_ERR_UNSUPPORTED, "training: backward for this cell configuration "
                                            "(cell %d with its variants) is not implemented yet",
                        (int)cf->cell);
    if (seq_len < 1) return fs__fail(FS_ERR_INVALID_ARG, "seq_len: expected >= 1, got %d", (int)seq_len);
    if (batch < 1) return fs__fail(FS_ERR_INVALID_ARG, "batch: expected >= 1, got %d", (int)batch);
    memset(p, 0, sizeof *p);
    p->T = (size_t)seq_len, p->B = (size_t)batch;
    p->I = (size_t)cf->input_size, p->H = (size_t)cf->hidden_size, p->hp = m->hp;
    p->R = m->r, p->rp = m->rp, p->P = cf->proj_size ? m->r : 0;
    p->G = m->gates, p->GH = p->G * p->H, p->KH = m->gh * p->H, p->S = ct->slots;
    p->D = m->dirs, p->L = (size_t)cf->num_layers, p->DR = p->D * p->R;
    p->E = fs__cell_extra_floats(ct, p->H);
    p->lstm = cf->cell == FS_CELL_LSTM;
    p->tbias = cf->bias && cf->cell != FS_CELL_FASTRNN && cf->cell != FS_CELL_FASTGRNN;
    const size_t T = p->T, B = p->B, H = p->H, R = p->R, GH = p->GH, D = p->D, L = p->L, U = L * D;
    const size_t wr = (size_t)cf->w_rank, ur = (size_t)cf->u_rank, P = p->P, hp = p->hp;
    size_t N = 0, UN = 0, LN = 0, cur = 0, fwd, bwd, unused;
    int ok = fs__mul(T, B, &N) && fs__mul(U, N, &UN) && fs__mul(L - 1, N, &LN);
    p->N = N;
    /* the record */
    ok = ok && reserve(&cur, B, 1, &p->len_off);
    ok = ok && reserve(&cur, N, p->I, &p->x_off);
    ok = ok && reserve(&cur, LN, p->DR, &p->y_off);
    ok = ok && reserve(&cur, UN, R, &p->hprev_off);
    ok = ok && reserve(&cur, p->lstm ? UN : 0, H, &p->cprev_off);
    ok = ok && reserve(&cur, UN, p->S * H, &p->act_off);
    ok = ok && reserve(&cur, P ? UN : 0, H, &p->mid_off);      /* o tanh(c) before the projection */
    ok = ok && reserve(&cur, 2, hp, &p->work_off);             /* the cells' scratch */
    /* forward scratch */
    fwd = cur;
    ok = ok && reserve(&fwd, N, p->G * hp, &p->gx_off);
    ok = ok && reserve(&fwd, N, m->wrp, &p->xa_off);
    ok = ok && reserve(&fwd, B, max2(m->gh * hp, p->rp), &p->tile_off);
    ok = ok && reserve(&fwd, B, m->urp, &p->tlow_off);
    ok = ok && reserve(&fwd, B, p->rp, &p->hcur_off);
    ok = ok && reserve(&fwd, B, hp, &p->ccur_off);
    ok = ok && reserve(&fwd, P ? B : 0, hp, &p->mcur_off);
    /* backward scratch, over the same floats */
    const size_t in_max = max2(p->I, L > 1 ? p->DR : 0), ghw = r32(GH), rk = max2(wr, ur);
    const size_t kmax = max2(max2(in_max, H), rk);
    bwd = cur;
    ok = ok && reserve(&bwd, B, GH, &p->sg_off);                        /* one step's dgx */
    ok = ok && reserve(&bwd, ct->split_dgh ? B : 0, GH, &p->sgh_off);   /* ... and dgh */
    ok = ok && reserve(&bwd, ghw, N, &p->pg_off);                       /* all dgx, panels */
    ok = ok && reserve(&bwd, ct->split_dgh ? ghw : 0, N, &p->pgh_off);
    ok = ok && reserve(&bwd, in_max + 1, N, &p->xt_off);                /* [X^T; 1] */
    ok = ok && reserve(&bwd, H + 1, N, &p->ht_off);                     /* [H_prev^T; 1], mid^T */
    ok = ok && reserve(&bwd, kmax + 1, max2(ghw, r32(rk)), &p->tmp_off); /* [dW^T; db] */
    ok = ok && reserve(&bwd, B, R, &p->dh_off);
    ok = ok && reserve(&bwd, B, H, &p->dc_off);
    ok = ok && reserve(&bwd, B, r32(R), &p->dtmp_off);
    ok = ok && reserve(&bwd, B, r32(in_max), &p->xtmp_off);
    ok = ok && reserve(&bwd, p->E, 1, &p->extra_off);
    ok = ok && reserve(&bwd, P ? r32(H) : 0, P, &p->pwhr_off);          /* projection */
    ok = ok && reserve(&bwd, P ? B : 0, r32(H), &p->dm_off);
    ok = ok && reserve(&bwd, P ? B : 0, R, &p->dhp_off);
    ok = ok && reserve(&bwd, P ? r32(P) : 0, N, &p->pdh_off);
    ok = ok && reserve_side(&bwd, in_max, GH, wr, B, N, &p->side[0]);
    ok = ok && reserve_side(&bwd, R, p->KH, ur, B, N, &p->side[1]);
    for (int i = 0; i < 2; i++) ok = ok && reserve(&bwd, L > 1 ? N : 0, p->DR, &p->dbuf_off[i]);
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
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    *out = NULL;
    if ((st = fs__check_buffer("buffer", buffer, buffer_bytes, need)) != FS_OK) return st;
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

static fs_status check_tape(const fs_rnn *m, const fs_rnn_tape *tp) {
    if (!m || !tp) return fs__fail(FS_ERR_NULL_ARG, "model and tape must not be NULL");
    if (tp->model != m)
        return fs__fail(FS_ERR_INVALID_ARG, "tape: made for another model");
    return FS_OK;
}

/* ---- forward with record ------------------------------------------------------------ */

/* Layer l, direction d: rows of `in` ([N][in_f]) to columns [d*R, d*R + R) of out ([N][DR]). */
static void record_unit(const fs_rnn *m, const fs_cell_train *ct, fs_rnn_tape *tp, size_t l,
                        size_t d, const float *in, float *out, const fs_seq_args *a) {
    const tplan *p = &tp->p;
    const fs_kernels *k = fs__kernels();
    const size_t ui = l * p->D + d, T = p->T, B = p->B, H = p->H, R = p->R, hp = p->hp, rp = p->rp;
    const size_t G = p->G, gh = m->gh, N = p->N, nblk = hp / FS_NB, S = p->S, P = p->P;
    const size_t ur = (size_t)m->cfg.u_rank, kh = ur ? ur : R;
    const fs_rnn_unit *u = &m->units[ui];
    float *ws = tp->data;
    const fs_cell_ctx cx = {m, u, H, G, ws + p->work_off};
    const int32_t *len = lengths_of(tp);
    float *gx = ws + p->gx_off, *tile = ws + p->tile_off, *tlow = ws + p->tlow_off;
    float *h = ws + p->hcur_off, *c = ws + p->ccur_off, *mc = ws + p->mcur_off;
    float *hprev = ws + p->hprev_off + ui * N * R, *cprev = ws + p->cprev_off + ui * N * H;
    float *act = ws + p->act_off + ui * N * S * H, *mid = ws + p->mid_off + ui * N * H;
    const float *bias_h = m->cfg.cell == FS_CELL_GRU && !m->cfg.reset_before ? u->bias_h : NULL;

    fs__project(m, k, u, N, in, u->in_size, ws + p->xa_off, gx);
    fs__load_state(a->h0 ? a->h0 + ui * B * R : NULL, B, R, rp, h);
    fs__load_state(a->c0 ? a->c0 + ui * B * H : NULL, B, H, hp, c);
    for (size_t s = 0; s < T; s++) {
        const size_t t = d ? T - 1 - s : s;
        if (ur) k->gemm(B, R, h, rp, u->w_hh_a_packed, 1, m->urp / FS_NB, NULL, tlow, m->urp);
        k->gemm(B, kh, ur ? tlow : h, ur ? m->urp : rp, u->w_hh_packed, gh, nblk, bias_h, tile, gh * hp);
        for (size_t b = 0; b < B; b++) {
            const size_t n = row_of(p, t, b);
            float *hb = h + b * rp, *cb = c + b * hp;
            memcpy(hprev + n * R, hb, R * sizeof(float));
            if (p->lstm) memcpy(cprev + n * H, cb, H * sizeof(float));
            if (!active(len, t, b)) {
                memset(act + n * S * H, 0, S * H * sizeof(float));
                if (P) memset(mid + n * H, 0, H * sizeof(float));
                continue;
            }
            /* with a projection the cell's h is m = o tanh(c), projected below */
            ct->forward(&cx, gx + n * G * hp, tile + b * gh * hp, P ? mc + b * hp : hb, cb,
                        act + n * S * H);
            if (P) memcpy(mid + n * H, mc + b * hp, H * sizeof(float));
        }
        if (P) k->gemm(B, H, mc, hp, u->w_hr_packed, 1, rp / FS_NB, NULL, tile, rp);
        for (size_t b = 0; b < B; b++) {
            float *yb = out + row_of(p, t, b) * p->DR + d * R;
            if (!active(len, t, b)) {
                memset(yb, 0, R * sizeof(float));
                continue;
            }
            if (P) memcpy(h + b * rp, tile + b * rp, R * sizeof(float));
            memcpy(yb, h + b * rp, R * sizeof(float));
        }
    }
    fs__store_state(h, B, R, rp, a->h_n ? a->h_n + ui * B * R : NULL);
    if (p->lstm) fs__store_state(c, B, H, hp, a->c_n ? a->c_n + ui * B * H : NULL);
}

fs_status fs_rnn_train_forward(const fs_rnn *model, const fs_seq_args *args, fs_rnn_tape *tape) {
    fs__clear_error();
    fs_status st = check_tape(model, tape);
    if (st != FS_OK) return st;
    if (!args) return fs__fail(FS_ERR_NULL_ARG, "args must not be NULL");
    tplan p;
    if ((st = make_plan(model, args->seq_len, args->batch, &p)) != FS_OK) return st;
    p.batch_first = args->batch_first;
    if ((st = fs__check_seq_args(model, args)) != FS_OK) return st;
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
        float *out = l + 1 == p.L ? args->y : ws + p.y_off + l * p.N * p.DR;
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
                if (!fs__has_param(m, &m->units[l * m->dirs + d], (fs_param)q)) continue;
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
    const size_t T = p->T, B = p->B, LD = p->L * p->D, S = LD * B * p->H, SR = LD * B * p->R;
    fs_status st;
    if (g->accumulate != 0 && g->accumulate != 1)
        return fs__fail(FS_ERR_INVALID_ARG, "accumulate: expected 0 or 1, got %d", (int)g->accumulate);
    if ((st = fs__check_count("grad_y", g->grad_y, g->grad_y_count, T * B * p->DR,
                              "(seq_len %zu x batch %zu x %zu directions*features)", T, B, p->DR)) != FS_OK)
        return st;
    if ((st = fs__check_count("grad_x", g->grad_x, g->grad_x_count, T * B * p->I,
                              "(seq_len %zu x batch %zu x input_size %zu)", T, B, p->I)) != FS_OK)
        return st;
    const char *state = "(%zu layers*directions x batch %zu x %s %zu)";
    if ((st = fs__check_count("grad_h_n", g->grad_h_n, g->grad_h_n_count, SR, state, LD, B, "features", p->R)) !=
        FS_OK)
        return st;
    if ((st = fs__check_count("grad_h0", g->grad_h0, g->grad_h0_count, SR, state, LD, B, "features", p->R)) != FS_OK)
        return st;
    if (m->cfg.cell != FS_CELL_LSTM && (g->grad_c_n || g->grad_c0))
        return fs__fail(FS_ERR_INVALID_ARG, "grad_c_n / grad_c0: only an LSTM has a cell state");
    if ((st = fs__check_count("grad_c_n", g->grad_c_n, g->grad_c_n_count, S, state, LD, B, "hidden", p->H)) != FS_OK)
        return st;
    if ((st = fs__check_count("grad_c0", g->grad_c0, g->grad_c0_count, S, state, LD, B, "hidden", p->H)) != FS_OK)
        return st;
    if ((st = fs__check_count("grad_params", g->grad_params, g->grad_params_count, n_params,
                          "(fs_rnn_param_count)")) != FS_OK)
        return st;
    return FS_OK;
}

/* From t = [dW^T; db] ([K + bias][ldt], a GEMM's output): dw[r][c] += t[c][r]
 * for rows r0 <= r < r1 of dw ([*][K]), c < K; db[r] += t[K][r] for r < nb when db. */
static void add_transposed(float *dw, size_t r0, size_t r1, float *db, size_t nb, const float *t,
                           size_t K, size_t ldt) {
    for (size_t a0 = r0; a0 < r1; a0 += 16)
        for (size_t c0 = 0; c0 < K; c0 += 16) {
            const size_t a1 = a0 + 16 < r1 ? a0 + 16 : r1, c1 = c0 + 16 < K ? c0 + 16 : K;
            for (size_t r = a0; r < a1; r++)
                for (size_t c = c0; c < c1; c++) dw[r * K + c] += t[c * ldt + r];
        }
    if (db)
        for (size_t r = 0; r < nb; r++) db[r] += t[K * ldt + r];
}

/* A weight's gradient from all rows at once: rows [r0, r1) of dw ([*][K]) +=
 * (op^T dG)^T and, with `ones`, db[0, cols) += the column sums of dG. opT: the
 * operand transposed, time-major ([K][N], then a ones row); pg: dG's panels
 * ([N][cols], panel_g(cols)). */
static void weight_grad(const fs_kernels *k, size_t N, const float *opT, size_t K, int ones,
                        const float *pg, size_t cols, float *tmp, float *dw, size_t r0, size_t r1,
                        float *db) {
    size_t g;
    const size_t w = panel_w(cols, &g);
    gemm_panels(k, K + (size_t)(ones != 0), N, opT, N, pg, cols, g, tmp);
    add_transposed(dw, r0, r1, ones ? db : NULL, cols, tmp, K, w);
}

/* One side of the gate pre-activations (rows [0, out) of dG): the input map
 * (W_ih, or W_b W_a) or the recurrent map (W_hh, or U_b U_a); see sideplan. */
typedef struct side {
    size_t K, out, rank;
    fs_param q_w, q_a, q_b, q_bias;
    const fs_rnn *m;
    const fs_rnn_unit *u;
    const float *a_packed; /* the model's packed W_a */
    float *pk_w, *pk_a, *pk_b, *mtmp, *pmid, *midrow, *midt;
} side;

static void make_side(const tplan *p, float *ws, const fs_rnn_unit *u, int rec, size_t K,
                      size_t out, size_t rank, side *s) {
    const sideplan *sp = &p->side[rec];
    s->K = K, s->out = out, s->rank = rank;
    s->q_w = rec ? FS_PARAM_WEIGHT_HH : FS_PARAM_WEIGHT_IH;
    s->q_a = rec ? FS_PARAM_WEIGHT_HH_A : FS_PARAM_WEIGHT_IH_A;
    s->q_b = rec ? FS_PARAM_WEIGHT_HH_B : FS_PARAM_WEIGHT_IH_B;
    s->q_bias = rec ? FS_PARAM_BIAS_HH : FS_PARAM_BIAS_IH;
    s->u = u;
    s->a_packed = rec ? u->w_hh_a_packed : u->w_ih_a_packed;
    s->pk_w = ws + sp->pk_w, s->pk_a = ws + sp->pk_a, s->pk_b = ws + sp->pk_b;
    s->mtmp = ws + sp->mtmp, s->pmid = ws + sp->pmid, s->midrow = ws + sp->midrow, s->midt = ws + sp->midt;
}

/* raw: room for one weight matrix in PyTorch layout (the weights are unpacked there first). */
static void side_pack(const side *s, float *raw) {
    size_t g, rg;
    panel_w(s->K, &g);
    panel_w(s->rank, &rg);
    if (!s->rank) {
        fs__unpack_param(s->m, s->u, s->q_w, raw);
        pack_panels(raw, s->out, s->K, s->K, g, s->pk_w, s->out, 0);
    } else {
        fs__unpack_param(s->m, s->u, s->q_b, raw);
        pack_panels(raw, s->out, s->rank, s->rank, rg, s->pk_b, s->out, 0);
        fs__unpack_param(s->m, s->u, s->q_a, raw);
        pack_panels(raw, s->rank, s->K, s->K, g, s->pk_a, s->rank, 0);
    }
}

/* One step, B rows: out ([B][returned stride]; NULL: not wanted) = dG W, with
 * dG = dg [B][out] (row stride ldg). Low rank: d mid = dG W_b first, kept in
 * the panels over all rows (rows m0.. of N) when `stash`. */
static size_t side_step(const fs_kernels *k, const side *s, size_t B, const float *dg, size_t ldg,
                        float *out, size_t N, size_t m0, int stash) {
    size_t g, rg;
    const size_t w = panel_w(s->K, &g), rw = panel_w(s->rank, &rg);
    const float *src = dg;
    size_t ld = ldg, kk = s->out;
    if (s->rank) {
        k->gemm(B, s->out, dg, ldg, s->pk_b, rg, rw / (rg * FS_NB), NULL, s->mtmp, rw);
        if (stash) step_to_panels(s->mtmp, B, s->rank, rw, rg, s->pmid, N, m0);
        src = s->mtmp, ld = rw, kk = s->rank;
    }
    if (out) k->gemm(B, kk, src, ld, s->rank ? s->pk_a : s->pk_w, g, w / (g * FS_NB), NULL, out, w);
    return w;
}

/* After the time loop: the side's weight (and bias) gradients into gp. opT: the
 * operand transposed (weight_grad), with a ones row when tbias; op: its rows
 * (x's layout, row stride ldop); pg: dG's panels ([N][cols]). */
static fs_status side_weights(const fs_rnn *m, const fs_kernels *k, const tplan *p, const side *s,
                              size_t l, size_t d, const float *opT, const float *op, size_t ldop,
                              const float *pg, size_t cols, float *tmp, float *gp) {
    size_t o_w = 0, o_b = 0, o_a = 0;
    fs_status st;
    if (!s->rank) {
        if ((st = param_offset(m, l, d, s->q_w, &o_w, NULL)) != FS_OK) return st;
        if (p->tbias && (st = param_offset(m, l, d, s->q_bias, &o_b, NULL)) != FS_OK) return st;
        weight_grad(k, p->N, opT, s->K, p->tbias, pg, cols, tmp, gp + o_w, 0, s->out, gp + o_b);
        return FS_OK;
    }
    if ((st = param_offset(m, l, d, s->q_a, &o_a, NULL)) != FS_OK) return st;
    if ((st = param_offset(m, l, d, s->q_b, &o_b, NULL)) != FS_OK) return st;
    const size_t rp = fs__round8(s->rank);
    size_t rg;
    panel_w(s->rank, &rg);
    /* mid = op W_a^T, then d W_b = dG^T mid and d W_a = d mid^T op */
    k->gemm(p->N, s->K, op, ldop, s->a_packed, 1, rp / FS_NB, NULL, s->midrow, rp);
    transpose_tm(p, s->midrow, s->rank, rp, s->midt, 0);
    weight_grad(k, p->N, s->midt, s->rank, 0, pg, cols, tmp, gp + o_b, 0, s->out, NULL);
    weight_grad(k, p->N, opT, s->K, 0, s->pmid, s->rank, tmp, gp + o_a, 0, s->rank, NULL);
    return FS_OK;
}

/* Layer l, direction d: the time loop, then its parameter gradients. Per step,
 * the cell's backward writes the step's dgates (B rows) into a small buffer
 * that feeds dh += dgh W_hh, the layer input's gradient dgx W_ih (added into
 * dx, rows in x's layout; NULL: not wanted) and, copied into time-major panels,
 * the weight-gradient GEMMs after the loop. With a projection dh (R wide) first
 * becomes dm = dh W_hr, the cell's dh. x: the layer input (rows); the tape's xt
 * holds it transposed (time-major, ones row when the model has torch biases). */
static fs_status backward_unit(const fs_rnn *m, const fs_cell_train *ct, fs_rnn_tape *tp, size_t l,
                               size_t d, const float *x, const float *dout, float *dx,
                               const fs_grad_args *g) {
    const tplan *p = &tp->p;
    const fs_kernels *k = fs__kernels();
    const fs_rnn_unit *u = &m->units[l * p->D + d];
    const size_t ui = l * p->D + d, T = p->T, B = p->B, H = p->H, R = p->R, N = p->N, GH = p->GH;
    const size_t S = p->S, P = p->P, in_f = u->in_size, sp = ct->split_dgh;
    const int want_w = g->grad_params != NULL;
    float *ws = tp->data;
    const fs_cell_ctx cx = {m, u, H, p->G, ws + p->work_off};
    const int32_t *len = lengths_of(tp);
    const float *hprev = ws + p->hprev_off + ui * N * R, *cprev = ws + p->cprev_off + ui * N * H;
    const float *act = ws + p->act_off + ui * N * S * H;
    float *sg = ws + p->sg_off, *sgh = sp ? ws + p->sgh_off : sg;
    float *pg = ws + p->pg_off, *pgh = sp ? ws + p->pgh_off : pg;
    float *dh = ws + p->dh_off, *dc = ws + p->dc_off, *dtmp = ws + p->dtmp_off, *xtmp = ws + p->xtmp_off;
    float *tmp = ws + p->tmp_off, *extra = ws + p->extra_off;
    float *pwhr = ws + p->pwhr_off, *dm = ws + p->dm_off, *dhp = ws + p->dhp_off, *pdh = ws + p->pdh_off;
    size_t gg, pgr, mg;
    panel_w(GH, &gg);
    const size_t mw = panel_w(H, &mg);
    panel_w(P, &pgr);
    side sx, sh;
    make_side(p, ws, u, 0, in_f, GH, (size_t)m->cfg.w_rank, &sx);
    make_side(p, ws, u, 1, R, p->KH, (size_t)m->cfg.u_rank, &sh);
    sx.m = sh.m = m;
    const int run_x = dx || (sx.rank && want_w); /* low rank: d W_a needs d mid */

    side_pack(&sh, tmp); /* tmp is free until the weight gradients */
    if (run_x) side_pack(&sx, tmp);
    if (P) {
        fs__unpack_param(m, u, FS_PARAM_WEIGHT_HR, tmp);
        pack_panels(tmp, P, H, H, mg, pwhr, P, 0);
    }
    if (g->grad_h_n) memcpy(dh, g->grad_h_n + ui * B * R, B * R * sizeof(float));
    else memset(dh, 0, B * R * sizeof(float));
    if (p->lstm && g->grad_c_n) memcpy(dc, g->grad_c_n + ui * B * H, B * H * sizeof(float));
    else memset(dc, 0, B * H * sizeof(float));
    memset(extra, 0, p->E * sizeof(float));

    for (size_t s = T; s-- > 0;) {
        const size_t t = d ? T - 1 - s : s;
        if (dout)
            for (size_t b = 0; b < B; b++) {
                if (!active(len, t, b)) continue;
                const float *dy = dout + row_of(p, t, b) * p->DR + d * R;
                for (size_t j = 0; j < R; j++) dh[b * R + j] += dy[j];
            }
        if (P) { /* dm = dh W_hr over active rows; dh's rows kept for d W_hr */
            for (size_t b = 0; b < B; b++) {
                if (active(len, t, b)) memcpy(dhp + b * R, dh + b * R, R * sizeof(float));
                else memset(dhp + b * R, 0, R * sizeof(float));
            }
            k->gemm(B, P, dhp, R, pwhr, mg, mw / (mg * FS_NB), NULL, dm, mw);
            if (want_w) step_to_panels(dhp, B, P, R, pgr, pdh, N, t * B);
        }
        for (size_t b = 0; b < B; b++) {
            const size_t n = row_of(p, t, b);
            if (!active(len, t, b)) { /* a finished sequence: zero dgates, dh and dc pass */
                memset(sg + b * GH, 0, GH * sizeof(float));
                if (sp) memset(sgh + b * GH, 0, GH * sizeof(float));
                continue;
            }
            ct->backward(&cx, act + n * S * H, hprev + n * R, p->lstm ? cprev + n * H : NULL,
                         P ? dm + b * mw : dh + b * R, dc + b * H, sg + b * GH, sgh + b * GH, extra);
            if (P) memset(dh + b * R, 0, R * sizeof(float)); /* an LSTM's h feeds only W_hh */
        }
        /* dh += dgh W_hh for all B rows at once (finished rows carry zero dgates) */
        const size_t ldo = side_step(k, &sh, B, sgh, GH, dtmp, N, t * B, want_w);
        for (size_t b = 0; b < B; b++)
            for (size_t j = 0; j < R; j++) dh[b * R + j] += dtmp[b * ldo + j];
        if (run_x) { /* the first direction sets dx, the second adds */
            const size_t ldx = side_step(k, &sx, B, sg, GH, dx ? xtmp : NULL, N, t * B, want_w);
            for (size_t b = 0; dx && b < B; b++) {
                float *row = dx + row_of(p, t, b) * in_f;
                const float *src = xtmp + b * ldx;
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
    if (g->grad_h0) memcpy(g->grad_h0 + ui * B * R, dh, B * R * sizeof(float));
    if (g->grad_c0) memcpy(g->grad_c0 + ui * B * H, dc, B * H * sizeof(float));

    if (!want_w) return FS_OK;
    float *gp = g->grad_params, *ht = ws + p->ht_off;
    fs_status st = side_weights(m, k, p, &sx, l, d, ws + p->xt_off, x, in_f, pg, GH, tmp, gp);
    if (st != FS_OK) return st;
    transpose_tm(p, hprev, R, R, ht, p->tbias);
    if ((st = side_weights(m, k, p, &sh, l, d, ht, hprev, R, pgh, GH, tmp, gp)) != FS_OK) return st;
    size_t off;
    if (ct->mid_slot >= 0) { /* reset-before GRU: d W_hn = dn^T (r h) */
        if ((st = param_offset(m, l, d, FS_PARAM_WEIGHT_HH, &off, NULL)) != FS_OK) return st;
        transpose_tm(p, act + (size_t)ct->mid_slot * H, H, S * H, ht, 0);
        weight_grad(k, N, ht, H, 0, pg, GH, tmp, gp + off, p->KH, GH, NULL);
    }
    if (P) { /* d W_hr = dh^T m */
        if ((st = param_offset(m, l, d, FS_PARAM_WEIGHT_HR, &off, NULL)) != FS_OK) return st;
        transpose_tm(p, ws + p->mid_off + ui * N * H, H, H, ht, 0);
        weight_grad(k, N, ht, H, 0, pdh, P, tmp, gp + off, 0, P, NULL);
    }
    for (int e = 0, at = 0; e < ct->n_extra; e++) { /* the cell's own parameters */
        const size_t n = ct->extra[e] >= FS_PARAM_ALPHA ? 1 : H;
        if ((st = param_offset(m, l, d, ct->extra[e], &off, NULL)) != FS_OK) return st;
        if (off != SIZE_MAX)
            for (size_t j = 0; j < n; j++) gp[off + j] += extra[at + j];
        at += (int)n;
    }
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
    const size_t N = p->N, DR = p->DR;
    if (args->grad_params && !args->accumulate) memset(args->grad_params, 0, n_params * sizeof(float));

    for (size_t l = p->L; l-- > 0;) {
        const size_t in_f = l ? DR : p->I;
        const float *x = l ? ws + p->y_off + (l - 1) * N * DR : ws + p->x_off;
        const float *dout = l + 1 == p->L ? args->grad_y : ws + p->dbuf_off[l % 2];
        float *dx = l ? ws + p->dbuf_off[(l - 1) % 2] : args->grad_x;
        if (args->grad_params) transpose_tm(p, x, in_f, in_f, ws + p->xt_off, p->tbias);
        for (size_t d = 0; d < p->D; d++)
            if ((st = backward_unit(model, ct, tape, l, d, x, dout, dx, args)) != FS_OK) return st;
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
    fs_status st = fs__check_count("h", h, h_count, p->L * p->B * p->R, "(%zu layers x batch %zu x features %zu)",
                                   p->L, p->B, p->R);
    if (st != FS_OK) return st;
    if (!p->lstm && c) return fs__fail(FS_ERR_INVALID_ARG, "c: only an LSTM has a cell state");
    if ((st = fs__check_count("c", c, c_count, p->L * p->B * p->H, "(%zu layers x batch %zu x hidden %zu)", p->L,
                              p->B, p->H)) != FS_OK)
        return st;
    for (size_t l = 0; l < p->L; l++)
        for (size_t b = 0; b < p->B; b++) {
            const size_t n = row_of(p, (size_t)t, b), at = l * p->B + b;
            if (h) memcpy(h + at * p->R, tape->data + p->hprev_off + (l * p->N + n) * p->R, p->R * sizeof(float));
            if (c) memcpy(c + at * p->H, tape->data + p->cprev_off + (l * p->N + n) * p->H, p->H * sizeof(float));
        }
    return FS_OK;
}
