/* Training: the forward recorded by the inference driver (rnn_forward.h: its
 * phases, kernels and threads, its input projection, recurrent products and
 * states kept in the tape), and back-propagation through time over it.
 *
 * Backward, per layer from the top, per direction, per step (in reverse): the
 * cell's record kernel recomputes its activations from the recorded gx, acc
 * and states, its backward kernel turns dh (and dc) into the step's dgates;
 * one packed GEMM adds dgates W_hh into dh, another gives the layer input's
 * gradient dgates W_ih (W_hh, W_ih packed in their natural layout once per
 * call); the step's dgates are copied into time-major panels. After the loop
 * two GEMMs over all rows give [dW_ih^T; db_ih] = [X^T; 1] dgx and
 * [dW_hh^T; db_hh] = [H_prev^T; 1] dgh. A low-rank map W_b W_a (FastRNN /
 * FastGRNN) runs each of these through its intermediate (`side`); the
 * projection adds dm = dh W_hr before the cell and d W_hr = dh^T m;
 * reset-before GRU's W_hn rows take dn^T (r h). Saved arrays follow x's row
 * layout (row of (t, b) = t*B + b, or b*T + t when batch_first), except the h
 * history, kept in each direction's step order.
 *
 * Threads: a unit's time loop splits by batch rows (sequences are independent;
 * no barrier), the weight-gradient GEMMs by column panels, the transposes by
 * row tiles. Every element is computed by one thread in one fixed order, and
 * sums over rows run in row order after the split: the same bits for any
 * thread count (kernels.h: summation order).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "rnn.h"
#include "rnn_args.h"
#include "rnn_backward.h"
#include "rnn_forward.h"
#include "rnn_step.h"
#include "threads.h"

/* Scratch of one side of the gate pre-activations (the input map W, or the
 * recurrent map U): natural-layout panels of W, or of W_a and W_b when low
 * rank, and for low rank the step's d mid = dG W_b, its panels over all rows,
 * and mid = op W_a^T over all rows (row layout, then transposed). */
typedef struct sideplan {
    size_t pk_w, pk_a, pk_b, mtmp, pmid, midrow, midt;
} sideplan;

typedef struct tplan {
    size_t T, B, N, I, H, R, hp, rp, G, GH, KH, S, D, L, DR, E, P;
    int batch_first, lstm, tbias, threads;
    /* in floats from the tape's data start; record arrays per unit (rnn_forward.h) */
    size_t len_off, x_off, y_off, gx_off, acc_off, hist_off, cprev_off, mid_off, hn_off;
    size_t gx_unit, acc_unit, hist_unit, c_unit;
    size_t fwd_off, fwd_floats; /* the forward's workspace */
    size_t sg_off, sgh_off, pg_off, pgh_off, xt_off, ht_off, tmp_off, dh_off, dc_off, /* backward */
        dtmp_off, xtmp_off, extra_off, pwhr_off, dm_off, dhp_off, pdh_off, dbuf_off[2], act_off, work_off,
        rh_off, dhn_off;
    size_t work_row; /* the cells' scratch per row */
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
static size_t panel_g(size_t gmax, size_t cols) { return cols >= 32 && gmax >= 4 ? 4 : cols >= 16 ? 2 : 1; }
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

/* Padded width of panels over `cols` columns, and their g (see panel_g; gmax:
 * the level's fs_kernels.panel_gates). */
static size_t panel_w(size_t gmax, size_t cols, size_t *g) {
    *g = panel_g(gmax, cols);
    return (cols + *g * FS_NB - 1) / (*g * FS_NB) * (*g * FS_NB);
}

/* A side's scratch: operand of up to K features, `out` gate rows, rank (0: full). */
static int reserve_side(size_t *cur, size_t K, size_t out, size_t rank, size_t B, size_t N,
                        sideplan *sp) {
    const size_t lr = rank ? 1 : 0;
    return reserve(cur, lr ? 0 : r32(K), out, &sp->pk_w) && reserve(cur, r32(K), rank, &sp->pk_a) &&
           reserve(cur, r32(rank), out, &sp->pk_b) && reserve(cur, lr * B, r32(rank), &sp->mtmp) &&
           reserve(cur, r32(rank), lr * N, &sp->pmid) && reserve(cur, N, fs__round8(rank), &sp->midrow) &&
           reserve(cur, rank + lr, N, &sp->midt); /* + a ones row: the biases' sums */
}

static fs_status make_plan(const fs_rnn *m, int32_t seq_len, int32_t batch, int threads, tplan *p) {
    const fs_cell_train *ct = fs__cell_train(m);
    const fs_rnn_config *cf = &m->cfg;
    if (!ct)
        return fs__fail(FS_ERR_UNSUPPORTED, "training: backward for this cell configuration "
                                            "(cell %d with its variants) is not implemented yet",
                        (int)cf->cell);
    if (seq_len < 1) return fs__fail(FS_ERR_INVALID_ARG, "seq_len: expected >= 1, got %d", (int)seq_len);
    if (batch < 1) return fs__fail(FS_ERR_INVALID_ARG, "batch: expected >= 1, got %d", (int)batch);
    memset(p, 0, sizeof *p);
    p->T = (size_t)seq_len, p->B = (size_t)batch, p->threads = threads;
    p->I = (size_t)cf->input_size, p->H = (size_t)cf->hidden_size, p->hp = m->hp;
    p->R = m->r, p->rp = m->rp, p->P = cf->proj_size ? m->r : 0;
    p->G = m->gates, p->GH = p->G * p->H, p->KH = m->gh * p->H, p->S = ct->slots;
    p->D = m->dirs, p->L = (size_t)cf->num_layers, p->DR = p->D * p->R;
    p->E = fs__cell_extra_floats(ct, p->H);
    p->lstm = cf->cell == FS_CELL_LSTM;
    p->tbias = cf->bias && cf->cell != FS_CELL_FASTRNN && cf->cell != FS_CELL_FASTGRNN;
    const size_t T = p->T, B = p->B, H = p->H, R = p->R, GH = p->GH, D = p->D, L = p->L, U = L * D;
    const size_t wr = (size_t)cf->w_rank, ur = (size_t)cf->u_rank, P = p->P, hp = p->hp;
    const int rb = cf->cell == FS_CELL_GRU && cf->reset_before;
    size_t N = 0, LN = 0, cur = 0, bwd, unused;
    int ok = fs__mul(T, B, &N) && fs__mul(L - 1, N, &LN);
    p->N = N;
    /* the record (rnn_forward.h's fs_record): per unit, U of each */
    ok = ok && fs__mul(N, p->G * hp, &p->gx_unit) && fs__mul(N, m->gh * hp, &p->acc_unit);
    ok = ok && fs__mul(T + 1, B * p->rp, &p->hist_unit) && fs__mul(N, hp, &p->c_unit);
    ok = ok && reserve(&cur, B, 1, &p->len_off);
    ok = ok && reserve(&cur, N, p->I, &p->x_off);
    ok = ok && reserve(&cur, LN, p->DR, &p->y_off);
    ok = ok && reserve(&cur, U, p->gx_unit, &p->gx_off);
    ok = ok && reserve(&cur, U, p->acc_unit, &p->acc_off);
    ok = ok && reserve(&cur, U, p->hist_unit, &p->hist_off);
    ok = ok && reserve(&cur, p->lstm ? U : 0, p->c_unit, &p->cprev_off);
    ok = ok && reserve(&cur, P ? U : 0, p->c_unit, &p->mid_off); /* o tanh(c) before the projection */
    ok = ok && reserve(&cur, rb ? U : 0, p->c_unit, &p->hn_off);  /* W_hn (r h) */
    /* the forward's workspace, then backward's scratch over the same floats */
    p->fwd_floats = ok ? fs__forward_ws_floats(m, seq_len, batch, threads, 1) : 0;
    ok = ok && p->fwd_floats && reserve(&cur, 0, 0, &p->fwd_off);
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
    ok = ok && reserve(&bwd, B, p->E, &p->extra_off);                   /* per row: sums in row order */
    ok = ok && reserve(&bwd, B, p->S * H, &p->act_off);                 /* the step's activations */
    p->work_row = 2 * hp + (rb ? fs__round8(ur) : 0);
    ok = ok && reserve(&bwd, B, p->work_row, &p->work_off);             /* the cells' scratch */
    ok = ok && reserve(&bwd, rb ? N : 0, H, &p->rh_off);                /* r h of every row */
    ok = ok && reserve(&bwd, rb && ur ? GH : 0, H, &p->dhn_off);        /* low-rank U: rows KH.. dn^T (r h) */
    ok = ok && reserve(&bwd, P ? r32(H) : 0, P, &p->pwhr_off);          /* projection */
    ok = ok && reserve(&bwd, P ? B : 0, r32(H), &p->dm_off);
    ok = ok && reserve(&bwd, P ? B : 0, R, &p->dhp_off);
    ok = ok && reserve(&bwd, P ? r32(P) : 0, N, &p->pdh_off);
    ok = ok && reserve_side(&bwd, in_max, GH, wr, B, N, &p->side[0]);
    ok = ok && reserve_side(&bwd, R, p->KH, ur, B, N, &p->side[1]);
    for (int i = 0; i < 2; i++) ok = ok && reserve(&bwd, L > 1 ? N : 0, p->DR, &p->dbuf_off[i]);
    ok = ok && fs__add(cur, p->fwd_floats, &cur);
    p->total = max2(cur, bwd);
    ok = ok && fs__mul(p->total, sizeof(float), &unused) && unused <= SIZE_MAX - 2 * FS_ALIGN;
    if (!ok)
        return fs__fail(FS_ERR_NOMEM, "tape size overflows for seq_len %d, batch %d", (int)seq_len,
                        (int)batch);
    return FS_OK;
}

/* ---- the cells' training shapes ------------------------------------------------------ */

static const fs_cell_train cells[FS_TRAIN_KINDS] = {
    [FS_TRAIN_RNN] = {1, 0, -1, 0, {0}},
    [FS_TRAIN_LSTM] = {5, 0, -1, 0, {0}},
    [FS_TRAIN_GRU] = {4, 1, -1, 0, {0}},
    [FS_TRAIN_LSTM_EXT] = {6, 0, -1, 3, {FS_PARAM_PEEPHOLE_I, FS_PARAM_PEEPHOLE_F, FS_PARAM_PEEPHOLE_O}},
    [FS_TRAIN_GRU_RB] = {4, 0, 3, 0, {0}},
    [FS_TRAIN_FASTRNN] = {1, 0, -1, 3, {FS_PARAM_BIAS_UPDATE, FS_PARAM_ALPHA, FS_PARAM_BETA}},
    [FS_TRAIN_FASTGRNN] = {2, 0, -1, 4, {FS_PARAM_BIAS_GATE, FS_PARAM_BIAS_UPDATE, FS_PARAM_ZETA, FS_PARAM_NU}},
    [FS_TRAIN_RNN_ACT] = {2, 0, -1, 0, {0}},
    [FS_TRAIN_LSTM_ACT] = {11, 0, -1, 3, {FS_PARAM_PEEPHOLE_I, FS_PARAM_PEEPHOLE_F, FS_PARAM_PEEPHOLE_O}},
    [FS_TRAIN_GRU_ACT] = {7, 1, -1, 0, {0}},
    [FS_TRAIN_GRU_RB_ACT] = {7, 0, 3, 0, {0}},
    [FS_TRAIN_UGRNN] = {2, 0, -1, 0, {0}},
};

size_t fs__cell_extra_floats(const fs_cell_train *ct, size_t H) {
    size_t n = 0;
    for (int e = 0; e < ct->n_extra; e++) n += ct->extra[e] >= FS_PARAM_ALPHA ? 1 : H;
    return n;
}

int fs__cell_train_kind(const fs_rnn *m) {
    const fs_rnn_config *c = &m->cfg;
    if (m->custom_acts) {
        switch (c->cell) {
        case FS_CELL_RNN_TANH:
        case FS_CELL_RNN_RELU: return FS_TRAIN_RNN_ACT;
        case FS_CELL_LSTM: return FS_TRAIN_LSTM_ACT;
        case FS_CELL_GRU: return c->reset_before ? FS_TRAIN_GRU_RB_ACT : FS_TRAIN_GRU_ACT;
        default: return -1;
        }
    }
    switch (c->cell) {
    case FS_CELL_RNN_TANH:
    case FS_CELL_RNN_RELU: return FS_TRAIN_RNN;
    case FS_CELL_LSTM: return (c->peephole || c->coupled) ? FS_TRAIN_LSTM_EXT : FS_TRAIN_LSTM;
    case FS_CELL_GRU: return c->reset_before ? FS_TRAIN_GRU_RB : FS_TRAIN_GRU;
    case FS_CELL_FASTRNN: return FS_TRAIN_FASTRNN;
    case FS_CELL_FASTGRNN: return FS_TRAIN_FASTGRNN;
    case FS_CELL_UGRNN: return FS_TRAIN_UGRNN;
    default: return -1;
    }
}

const fs_cell_train *fs__cell_train(const fs_rnn *m) {
    const int kind = fs__cell_train_kind(m);
    return kind < 0 ? NULL : &cells[kind];
}

fs_cell_params fs__cell_params(const fs_rnn *m, const fs_rnn_unit *u) {
    const fs_rnn_config *c = &m->cfg;
    const fs_cell_params cp = {
        .relu = c->cell == FS_CELL_RNN_RELU, .coupled = c->coupled, .pi = u->vec[FS_VEC_PI], .pf = u->vec[FS_VEC_PF], .po = u->vec[FS_VEC_PO],
        .bg = u->vec[FS_VEC_BIAS_GATE], .bu = u->vec[FS_VEC_BIAS_UPDATE], .whn = u->w_hn_packed,
        .ua = u->w_hn_packed && c->u_rank ? u->w_hh_a_packed : NULL, .u_rank = (size_t)c->u_rank,
        .a = u->coef[0], .b = u->coef[1], .acts = &m->acts,
    };
    return cp;
}

int fs__param_shape(const fs_rnn *m, size_t layer, size_t dir, fs_param q, size_t *rows, size_t *cols) {
    /* not fs_rnn_param_shape: absent is an answer here, not an error to format (the
     * flat offsets ask about every parameter of every unit, on every backward call) */
    if (layer >= (size_t)m->cfg.num_layers || dir >= m->dirs || (int)q < 0 || q >= FS_PARAM_COUNT) return 0;
    return fs__unit_param_shape(m, &m->units[layer * m->dirs + dir], q, rows, cols);
}

/* ---- the tape ---------------------------------------------------------------------- */

static size_t header_bytes(void) { return fs__align_up(sizeof(struct fs_rnn_tape)); }

fs_status fs_rnn_tape_size(const fs_rnn *model, int32_t seq_len, int32_t batch, size_t *bytes_out) {
    fs__clear_error();
    if (!model || !bytes_out) return fs__fail(FS_ERR_NULL_ARG, "model and bytes_out must not be NULL");
    if (model->cfg.dtype != FS_DTYPE_F32)
        return fs__fail(FS_ERR_UNSUPPORTED, "training: expected an fp32 model, got dtype %s (quantised models "
                        "run inference only: train the fp32 model, then quantise it)",
                        fs_dtype_name((fs_dtype)model->cfg.dtype));
    tplan p;
    fs_status st = make_plan(model, seq_len, batch, fs__max_threads(), &p);
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

/* Worker id's share [*lo, *hi) of [0, n). */
static void split(size_t n, int nth, int id, size_t *lo, size_t *hi) {
    *lo = n * (size_t)id / (size_t)nth;
    *hi = n * (size_t)(id + 1) / (size_t)nth;
}

/* ---- shared helpers ------------------------------------------------------------------ */

static size_t row_of(const tplan *p, size_t t, size_t b) { return p->batch_first ? b * p->T + t : t * p->B + b; }
static const int32_t *lengths_of(const fs_rnn_tape *tp) {
    return tp->p.len_off != SIZE_MAX ? (const int32_t *)(tp->data + tp->p.len_off) : NULL;
}
static int active(const int32_t *len, size_t t, size_t b) { return !len || t < (size_t)len[b]; }

/* B-operand panels of W = 8*g columns for the kernels' gemm over W [rows][K]
 * in PyTorch layout (row q*n + j: gate q, unit j): dst[(jb * rows + r) * W + l]
 * = W[r][jb*W + l], zero past K, read from W's packed copy w ([n/8 blocks][K]
 * [G][8], kernels.h): the backward's transposed products reduce over W's rows. */
static void panels_from_packed(const float *w, size_t G, size_t n, size_t K, size_t rows, size_t g, float *dst) {
    const size_t W = g * FS_NB, nb = (K + W - 1) / W, pad = nb * W - K;
    for (size_t r = 0; pad && r < rows; r++) memset(dst + ((nb - 1) * rows + r) * W + W - pad, 0, pad * sizeof(float));
    /* w in its own order (a sequential read): unit block, input k, gate, lane */
    for (size_t j0 = 0; j0 < n; j0 += FS_NB) {
        const size_t lanes = n - j0 < FS_NB ? n - j0 : FS_NB;
        for (size_t kc = 0; kc < K; kc++) {
            const float *src = w + (j0 * K + kc * FS_NB) * G;
            float *d = dst + (kc / W * rows + j0) * W + kc % W;
            for (size_t q = 0; q < rows / n; q++)
                for (size_t l = 0; l < lanes; l++) d[(q * n + l) * W] = src[q * FS_NB + l];
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


/* Where row (t, b) of an [N][*] array lies: x's row layout, or (by_step) the
 * step order of direction dir (the h history: t = T - 1 - s when reversed). */
typedef struct rowmap {
    int by_step;
    size_t dir;
} rowmap;
static const rowmap XROWS = {0, 0};
static size_t row_at(const tplan *p, rowmap r, size_t t, size_t b) {
    return r.by_step ? (r.dir ? p->T - 1 - t : t) * p->B + b : row_of(p, t, b);
}

/* Rows of an [N][cols] array (stride ld, rows where rm says) transposed into
 * time-major columns: dst[c][t*B + b] = src[row (t, b)][c], 16 x 16 tiles; with `ones`,
 * one more row dst[cols][*] = 1 (a GEMM with it also sums over rows). The
 * weight-gradient GEMMs index rows this way, matching step_to_panels. */
static void transpose_tm(const tplan *p, int nt, rowmap rm, const float *src, size_t cols, size_t ld, float *dst,
                         int ones) {
    const size_t N = p->N;
    (void)nt; /* unused where OpenMP is off */
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t m0 = 0; m0 < N; m0 += 16) {
        const size_t m1 = m0 + 16 < N ? m0 + 16 : N;
        const float *rows[16];
        for (size_t m = m0; m < m1; m++) rows[m - m0] = src + row_at(p, rm, m / p->B, m % p->B) * ld;
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

fs_status fs_rnn_train_forward(const fs_rnn *model, const fs_seq_args *args, fs_rnn_tape *tape) {
    fs__clear_error();
    fs_status st = check_tape(model, tape);
    if (st != FS_OK) return st;
    if (!args) return fs__fail(FS_ERR_NULL_ARG, "args must not be NULL");
    const fs_kernels *k = fs__kernels(); /* read once, as the thread count */
    int threads = fs__max_threads();
    tplan p;
    if ((st = make_plan(model, args->seq_len, args->batch, threads, &p)) != FS_OK) return st;
    /* a tape made when fewer threads were set runs on as many as it holds tiles for */
    if (p.total > tape->capacity && threads > 1 && make_plan(model, args->seq_len, args->batch, 1, &p) != FS_OK)
        return fs__fail(FS_ERR_NOMEM, "tape size overflows");
    p.batch_first = args->batch_first;
    if ((st = fs__check_seq_args(model, args)) != FS_OK) return st;
    if (p.total > tape->capacity)
        return fs__fail(FS_ERR_SHAPE, "tape: seq_len %d, batch %d need %zu bytes, the tape holds %zu",
                        (int)args->seq_len, (int)args->batch, header_bytes() + p.total * sizeof(float),
                        header_bytes() + tape->capacity * sizeof(float));
    if (!args->lengths) p.len_off = SIZE_MAX;
    tape->recorded = 0;
    float *ws = tape->data;
    if (args->lengths) memcpy(ws + p.len_off, args->lengths, p.B * sizeof(int32_t));
    memcpy(ws + p.x_off, args->x, p.N * p.I * sizeof(float));
    const fs_record rec = {
        .gx = ws + p.gx_off, .acc = ws + p.acc_off, .hist = ws + p.hist_off,
        .c = p.lstm ? ws + p.cprev_off : NULL, .mid = p.P ? ws + p.mid_off : NULL,
        .hn = model->cfg.cell == FS_CELL_GRU && model->cfg.reset_before ? ws + p.hn_off : NULL,
        .layer_out = ws + p.y_off, .gx_unit = p.gx_unit, .acc_unit = p.acc_unit, .c_unit = p.c_unit,
        .mid_unit = p.c_unit, .hn_unit = p.c_unit, .hist_unit = p.hist_unit,
    };
    const size_t room = tape->capacity - p.fwd_off;
    if ((st = fs__rnn_forward_run(model, args, k, threads, ws + p.fwd_off, room < p.fwd_floats ? room : p.fwd_floats,
                                  &rec)) != FS_OK)
        return st;
    tape->p = p;
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
                size_t rows = 0, cols = 0;
                if (!fs__param_shape(m, l, d, (fs_param)q, &rows, &cols)) continue;
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
 * for rows r0 <= r < r1 of dw ([*][K]), c < K; db[r] += t[K][r] for b0 <= r < b1 when db. */
static void add_transposed(float *dw, size_t r0, size_t r1, float *db, size_t b0, size_t b1, const float *t,
                           size_t K, size_t ldt) {
    for (size_t a0 = r0; a0 < r1; a0 += 16)
        for (size_t c0 = 0; c0 < K; c0 += 16) {
            const size_t a1 = a0 + 16 < r1 ? a0 + 16 : r1, c1 = c0 + 16 < K ? c0 + 16 : K;
            for (size_t r = a0; r < a1; r++)
                for (size_t c = c0; c < c1; c++) dw[r * K + c] += t[c * ldt + r];
        }
    if (db)
        for (size_t r = b0; r < b1; r++) db[r] += t[K * ldt + r];
}

/* A weight's gradient from all rows at once: rows [r0, r1) of dw ([*][K]) +=
 * (op^T dG)^T and, with `ones`, db[0, cols) += the column sums of dG. opT: the operand transposed, time-major ([K][N], then a
 * ones row); pg: dG's panels ([N][cols], panel_g of cols). One kernel call per
 * panel: its row loop then runs inside a panel, which stays in cache while the
 * long A rows stream (N is T*B; the kernel's own order, panels inside row
 * chunks, would stream all of pg per chunk). Threads split the panels: each
 * column of the result is one whole reduction over N, whatever the count. */
typedef struct wgrad {
    const fs_kernels *k;
    size_t N, K, cols, r0, r1, g, w;
    int ones;
    const float *opT, *pg;
    float *tmp, *dw, *db;
} wgrad;

static void wgrad_part(const wgrad *a, int id, int nth) {
    const size_t W = a->g * FS_NB, K1 = a->K + (size_t)(a->ones != 0);
    size_t q0, q1;
    split(a->w / W, nth, id, &q0, &q1);
    for (size_t q = q0; q < q1; q++) a->k->gemm(K1, a->N, a->opT, a->N, a->pg + q * a->N * W, a->g, 1, NULL, a->tmp + q * W, a->w);
    const size_t lo = q0 * W > a->r0 ? q0 * W : a->r0, hi = q1 * W < a->r1 ? q1 * W : a->r1;
    const size_t bhi = q1 * W < a->cols ? q1 * W : a->cols;
    add_transposed(a->dw, lo, hi > lo ? hi : lo, a->ones ? a->db : NULL, q0 * W, bhi > q0 * W ? bhi : q0 * W, a->tmp,
                   a->K, a->w);
}

static void weight_grad(const fs_kernels *k, int nt, size_t N, const float *opT, size_t K, int ones,
                        const float *pg, size_t cols, float *tmp, float *dw, size_t r0, size_t r1, float *db) {
    wgrad a = {.k = k, .N = N, .K = K, .cols = cols, .r0 = r0, .r1 = r1, .ones = ones, .opT = opT, .pg = pg,
               .tmp = tmp, .dw = dw, .db = db};
    a.w = panel_w(k->panel_gates, cols, &a.g);
    if (nt > (int)(a.w / (a.g * FS_NB))) nt = (int)(a.w / (a.g * FS_NB));
    if (nt <= 1) {
        wgrad_part(&a, 0, 1);
    } else {
#pragma omp parallel num_threads(nt)
        wgrad_part(&a, FS_THREAD_ID(), FS_THREAD_COUNT());
    }
}

/* One side of the gate pre-activations (rows [0, out) of dG): the input map
 * (W_ih, or W_b W_a) or the recurrent map (W_hh, or U_b U_a); see sideplan. */
typedef struct side {
    size_t K, out, rank;
    fs_param q_w, q_a, q_b, q_bias;
    size_t G;                         /* gate panels of the packed W (or W_b) */
    const float *w, *a;               /* packed W (or W_b over the rank), packed W_a */
    float *pk_w, *pk_a, *pk_b, *mtmp, *pmid, *midrow, *midt;
} side;

static void make_side(const fs_rnn *m, const tplan *p, float *ws, const fs_rnn_unit *u, int rec, size_t K,
                      size_t out, size_t rank, side *s) {
    const sideplan *sp = &p->side[rec];
    s->K = K, s->out = out, s->rank = rank;
    s->q_w = rec ? FS_PARAM_WEIGHT_HH : FS_PARAM_WEIGHT_IH;
    s->q_a = rec ? FS_PARAM_WEIGHT_HH_A : FS_PARAM_WEIGHT_IH_A;
    s->q_b = rec ? FS_PARAM_WEIGHT_HH_B : FS_PARAM_WEIGHT_IH_B;
    s->q_bias = rec ? FS_PARAM_BIAS_HH : FS_PARAM_BIAS_IH;
    s->G = rec ? m->gh : m->gates;
    s->w = rec ? u->w_hh_packed : u->w_ih_packed;
    s->a = rec ? u->w_hh_a_packed : u->w_ih_a_packed;
    s->pk_w = ws + sp->pk_w, s->pk_a = ws + sp->pk_a, s->pk_b = ws + sp->pk_b;
    s->mtmp = ws + sp->mtmp, s->pmid = ws + sp->pmid, s->midrow = ws + sp->midrow, s->midt = ws + sp->midt;
}

static void side_pack(const fs_kernels *k, const side *s) {
    size_t g, rg;
    panel_w(k->panel_gates, s->K, &g);
    panel_w(k->panel_gates, s->rank, &rg);
    const size_t n = s->out / s->G; /* units per gate */
    if (!s->rank) {
        panels_from_packed(s->w, s->G, n, s->K, s->out, g, s->pk_w);
    } else {
        panels_from_packed(s->w, s->G, n, s->rank, s->out, rg, s->pk_b);
        panels_from_packed(s->a, 1, s->rank, s->K, s->rank, g, s->pk_a);
    }
}

/* One step, rows [b0, b0 + nb) of its B: out (their rows, panel_w of K
 * apart; NULL: not wanted) = dG W, with dG = dg (the same rows, row stride
 * ldg). Low rank: d mid = dG W_b first (the side's scratch rows b0..), kept in
 * the panels over all rows (rows m0.. of N) when `stash`. Rows are
 * independent: workers may take disjoint row ranges. */
static void side_step(const fs_kernels *k, const side *s, size_t b0, size_t nb, const float *dg, size_t ldg,
                      float *out, size_t N, size_t m0, int stash) {
    size_t g, rg;
    const size_t w = panel_w(k->panel_gates, s->K, &g), rw = panel_w(k->panel_gates, s->rank, &rg);
    const float *src = dg;
    size_t ld = ldg, kk = s->out;
    if (s->rank) {
        float *mid = s->mtmp + b0 * rw;
        k->gemm(nb, s->out, dg, ldg, s->pk_b, rg, rw / (rg * FS_NB), NULL, mid, rw);
        if (stash) step_to_panels(mid, nb, s->rank, rw, rg, s->pmid, N, m0);
        src = mid, ld = rw, kk = s->rank;
    }
    if (out) k->gemm(nb, kk, src, ld, s->rank ? s->pk_a : s->pk_w, g, w / (g * FS_NB), NULL, out, w);
}

/* After the time loop: the side's weight (and bias) gradients into gp. opT: the
 * operand transposed (weight_grad), with a ones row when tbias; op: its N rows
 * (row stride ldop, where rm says); pg: dG's panels ([N][cols]). */
static fs_status side_weights(const fs_rnn *m, const fs_kernels *k, int nt, const tplan *p, const side *s,
                              size_t l, size_t d, const float *opT, const float *op, size_t ldop, rowmap rm,
                              const float *pg, size_t cols, float *tmp, float *gp) {
    size_t o_w = 0, o_b = 0, o_a = 0;
    fs_status st;
    if (!s->rank) {
        if ((st = param_offset(m, l, d, s->q_w, &o_w, NULL)) != FS_OK) return st;
        if (p->tbias && (st = param_offset(m, l, d, s->q_bias, &o_b, NULL)) != FS_OK) return st;
        weight_grad(k, nt, p->N, opT, s->K, p->tbias, pg, cols, tmp, gp + o_w, 0, s->out, gp + o_b);
        return FS_OK;
    }
    if ((st = param_offset(m, l, d, s->q_a, &o_a, NULL)) != FS_OK) return st;
    if ((st = param_offset(m, l, d, s->q_b, &o_w, NULL)) != FS_OK) return st;
    if (p->tbias && (st = param_offset(m, l, d, s->q_bias, &o_b, NULL)) != FS_OK) return st;
    const size_t rp = fs__round8(s->rank);
    size_t rg;
    panel_w(k->panel_gates, s->rank, &rg);
    /* mid = op W_a^T, then d W_b = dG^T mid (and d bias = dG^T 1) and d W_a = d mid^T op */
    k->gemm(p->N, s->K, op, ldop, s->a, 1, rp / FS_NB, NULL, s->midrow, rp);
    transpose_tm(p, nt, rm, s->midrow, s->rank, rp, s->midt, p->tbias);
    weight_grad(k, nt, p->N, s->midt, s->rank, p->tbias, pg, cols, tmp, gp + o_w, 0, s->out, gp + o_b);
    weight_grad(k, nt, p->N, opT, s->K, 0, s->pmid, s->rank, tmp, gp + o_a, 0, s->rank, NULL);
    return FS_OK;
}

/* Threads for a unit's time loop, split by batch rows: a step costs the two
 * transposed products (dgates W_hh, dgates W_ih) over B rows. */
static int steps_threads(const tplan *p, int threads, size_t in_f) {
    const double flops = 2.0 * (double)p->B * (double)p->GH * (double)(p->R + in_f);
    return fs__threads_for(threads, flops, p->B);
}

/* Threads for the weight-gradient GEMMs after a time loop (and the transposes
 * of their operands): one reduction over all T*B rows per column. */
static int weights_threads(const tplan *p, int threads) {
    return fs__threads_for(threads, 2.0 * (double)p->N * (double)p->GH * (double)p->H, p->GH / FS_NB);
}

/* What the workers of one unit's time loop share (see backward_unit). */
typedef struct steps_job {
    const tplan *p;
    const fs_kernels *k;
    const fs_cell_train *ct;
    const fs_cell_params *cp;
    const side *sx, *sh;
    int kind;
    size_t d;
    const int32_t *len;
    const float *hist, *gxr, *accr, *cprev, *hnr, *dout;
    float *act, *work, *rh, *sg, *sgh, *pg, *pgh, *dh, *dc, *dtmp, *xtmp, *extra, *pwhr, *dm, *dhp, *pdh, *dx;
    size_t in_f, ldgx, ldacc, mw, mg, pgr, gg;
    int want_w, run_x;
} steps_job;

/* Rows [b0, b1) of step s: dh += dy, the projection's dm, then each row's
 * record and backward cell kernels into its dgates (and their panels). */
static void step_rows(const steps_job *j, size_t s, size_t b0, size_t b1) {
    const tplan *p = j->p;
    const fs_kernels *k = j->k;
    const size_t T = p->T, B = p->B, H = p->H, R = p->R, N = p->N, GH = p->GH, S = p->S, E = p->E;
    const size_t P = p->P, hp = p->hp, rp = p->rp, d = j->d, t = d ? T - 1 - s : s, nb = b1 - b0;
    const int sp = j->ct->split_dgh;
    if (b1 <= b0) return;
    if (j->dout)
        for (size_t b = b0; b < b1; b++) {
            if (!active(j->len, t, b)) continue;
            const float *dy = j->dout + row_of(p, t, b) * p->DR + d * R;
            for (size_t c = 0; c < R; c++) j->dh[b * R + c] += dy[c];
        }
    if (P) { /* dm = dh W_hr over active rows; dh's rows kept for d W_hr */
        for (size_t b = b0; b < b1; b++) {
            if (active(j->len, t, b)) memcpy(j->dhp + b * R, j->dh + b * R, R * sizeof(float));
            else memset(j->dhp + b * R, 0, R * sizeof(float));
        }
        k->gemm(nb, P, j->dhp + b0 * R, R, j->pwhr, j->mg, j->mw / (j->mg * FS_NB), NULL, j->dm + b0 * j->mw, j->mw);
        if (j->want_w) step_to_panels(j->dhp + b0 * R, nb, P, R, j->pgr, j->pdh, N, t * B + b0);
    }
    for (size_t b = b0; b < b1; b++) {
        const size_t n = row_of(p, t, b);
        float *sgb = j->sg + b * GH, *sghb = j->sgh + b * GH;
        if (!active(j->len, t, b)) { /* a finished sequence: zero dgates, dh and dc pass */
            memset(sgb, 0, GH * sizeof(float));
            if (sp) memset(sghb, 0, GH * sizeof(float));
            continue;
        }
        const float *hb = j->hist + (s * B + b) * rp, *cb = j->cprev ? j->cprev + n * hp : NULL;
        float *ab = j->act + b * S * H;
        k->cell_record[j->kind](H, j->cp, j->gxr + n * j->ldgx, j->accr + n * j->ldacc,
                                j->hnr ? j->hnr + n * hp : NULL, hb, cb, ab);
        if (j->hnr) memcpy(j->rh + n * H, ab + (size_t)j->ct->mid_slot * H, H * sizeof(float));
        k->cell_backward[j->kind](H, j->cp, ab, hb, cb, P ? j->dm + b * j->mw : j->dh + b * R, j->dc + b * H, sgb,
                                  sghb, j->extra + b * E, j->work + b * p->work_row);
        if (P) memset(j->dh + b * R, 0, R * sizeof(float)); /* an LSTM's h feeds only W_hh */
    }
    if (j->want_w) {
        step_to_panels(j->sg + b0 * GH, nb, GH, GH, j->gg, j->pg, N, t * B + b0);
        if (sp) step_to_panels(j->sgh + b0 * GH, nb, GH, GH, j->gg, j->pgh, N, t * B + b0);
    }
}

/* Worker id of nth over the unit's steps, last first, for its own batch rows
 * (sequences are independent in backward as in forward): the cells, then
 * dh += dgh W_hh and the layer input's dx = dgx W_ih for those rows. No
 * barrier: each worker writes only its rows (and their rows of the panels);
 * every row's result is the same whatever the split (kernels.h's summation
 * order). */
static void steps_worker(const steps_job *j, int id, int nth) {
    const tplan *p = j->p;
    const fs_kernels *k = j->k;
    const size_t T = p->T, B = p->B, R = p->R, N = p->N, GH = p->GH, in_f = j->in_f, d = j->d;
    size_t b0, b1;
    split(B, nth, id, &b0, &b1);
    if (b1 <= b0) return;
    const size_t nb = b1 - b0;
    for (size_t s = T; s-- > 0;) {
        const size_t t = d ? T - 1 - s : s, m0 = t * B + b0;
        step_rows(j, s, b0, b1);
        size_t g;
        const size_t ldo = panel_w(k->panel_gates, R, &g), ldx = panel_w(k->panel_gates, in_f, &g);
        float *dtmp = j->dtmp + b0 * ldo, *xtmp = j->xtmp + b0 * ldx;
        side_step(k, j->sh, b0, nb, j->sgh + b0 * GH, GH, dtmp, N, m0, j->want_w);
        if (j->run_x) side_step(k, j->sx, b0, nb, j->sg + b0 * GH, GH, j->dx ? xtmp : NULL, N, m0, j->want_w);
        for (size_t b = b0; b < b1; b++)
            for (size_t c = 0; c < R; c++) j->dh[b * R + c] += dtmp[(b - b0) * ldo + c];
        for (size_t b = b0; j->dx && b < b1; b++) { /* the first direction sets dx, the second adds */
            float *row = j->dx + row_of(p, t, b) * in_f;
            const float *src = xtmp + (b - b0) * ldx;
            if (d == 0) memcpy(row, src, in_f * sizeof(float));
            else
                for (size_t c = 0; c < in_f; c++) row[c] += src[c];
        }
    }
}

/* A reset-before GRU's low-rank n path, n += U_b,n U_a (r h), from D = dn^T (r h)
 * summed over all rows ([H][H]): d U_b,n += D U_a^T and d U_a += U_b,n^T D (read
 * from the packed factors: element (j, k) of a one-gate matrix of K inputs lies at
 * (j / 8) K 8 + k 8 + j % 8). */
static void low_rank_n_grads(const fs_rnn_unit *u, size_t H, size_t ur, const float *dn_rh, float *d_ubn, float *d_ua) {
    const float *ua = u->w_hh_a_packed, *ubn = u->w_hn_packed;
    for (size_t j = 0; j < H; j++)
        for (size_t c = 0; c < ur; c++) {
            const float *a = ua + (c / FS_NB) * H * FS_NB + c % FS_NB;
            float s = 0.0f;
            for (size_t k = 0; k < H; k++) s += dn_rh[j * H + k] * a[k * FS_NB];
            d_ubn[j * ur + c] += s;
        }
    for (size_t c = 0; c < ur; c++)
        for (size_t k = 0; k < H; k++) {
            float s = 0.0f;
            for (size_t j = 0; j < H; j++) s += ubn[(j / FS_NB) * ur * FS_NB + c * FS_NB + j % FS_NB] * dn_rh[j * H + k];
            d_ua[c * H + k] += s;
        }
}

/* Layer l, direction d: the time loop, then its parameter gradients. Per step,
 * the cell's backward writes the step's dgates (B rows) into a small buffer
 * that feeds dh += dgh W_hh, the layer input's gradient dgx W_ih (added into
 * dx, rows in x's layout; NULL: not wanted) and, copied into time-major panels,
 * the weight-gradient GEMMs after the loop. With a projection dh (R wide) first
 * becomes dm = dh W_hr, the cell's dh. x: the layer input (rows); the tape's xt
 * holds it transposed (time-major, ones row when the model has torch biases). */
static fs_status backward_unit(const fs_rnn *m, const fs_kernels *k, int threads, const fs_cell_train *ct,
                               fs_rnn_tape *tp, size_t l, size_t d, const float *x, const float *dout, float *dx,
                               const fs_grad_args *g) {
    const tplan *p = &tp->p;
    const fs_rnn_unit *u = &m->units[l * p->D + d];
    const size_t ui = l * p->D + d, B = p->B, H = p->H, R = p->R, N = p->N, GH = p->GH;
    const size_t P = p->P, E = p->E, in_f = u->in_size, sp = ct->split_dgh, hp = p->hp, rp = p->rp;
    const size_t ldgx = p->G * hp, ldacc = m->gh * hp;
    const int want_w = g->grad_params != NULL, kind = fs__cell_train_kind(m);
    const fs_cell_params cp = fs__cell_params(m, u);
    const rowmap hrows = {1, d}; /* the h history's rows */
    float *ws = tp->data;
    const int32_t *len = lengths_of(tp);
    const float *hist = ws + p->hist_off + ui * p->hist_unit, *gxr = ws + p->gx_off + ui * p->gx_unit;
    const float *accr = ws + p->acc_off + ui * p->acc_unit;
    const float *cprev = p->lstm ? ws + p->cprev_off + ui * p->c_unit : NULL;
    const float *hnr = ct->mid_slot >= 0 ? ws + p->hn_off + ui * p->c_unit : NULL;
    float *act = ws + p->act_off, *work = ws + p->work_off, *rh = ws + p->rh_off;
    float *sg = ws + p->sg_off, *sgh = sp ? ws + p->sgh_off : sg;
    float *pg = ws + p->pg_off, *pgh = sp ? ws + p->pgh_off : pg;
    float *dh = ws + p->dh_off, *dc = ws + p->dc_off, *dtmp = ws + p->dtmp_off, *xtmp = ws + p->xtmp_off;
    float *tmp = ws + p->tmp_off, *extra = ws + p->extra_off;
    float *pwhr = ws + p->pwhr_off, *dm = ws + p->dm_off, *dhp = ws + p->dhp_off, *pdh = ws + p->pdh_off;
    size_t gg, pgr, mg;
    panel_w(k->panel_gates, GH, &gg);
    const size_t mw = panel_w(k->panel_gates, H, &mg);
    panel_w(k->panel_gates, P, &pgr);
    side sx, sh;
    make_side(m, p, ws, u, 0, in_f, GH, (size_t)m->cfg.w_rank, &sx);
    make_side(m, p, ws, u, 1, R, p->KH, (size_t)m->cfg.u_rank, &sh);
    const int run_x = dx || (sx.rank && want_w); /* low rank: d W_a needs d mid */

    side_pack(k, &sh);
    if (run_x) side_pack(k, &sx);
    if (P) panels_from_packed(u->w_hr_packed, 1, P, H, P, mg, pwhr);
    if (g->grad_h_n) memcpy(dh, g->grad_h_n + ui * B * R, B * R * sizeof(float));
    else memset(dh, 0, B * R * sizeof(float));
    if (p->lstm && g->grad_c_n) memcpy(dc, g->grad_c_n + ui * B * H, B * H * sizeof(float));
    else memset(dc, 0, B * H * sizeof(float));
    memset(extra, 0, B * E * sizeof(float));

    const int wt = weights_threads(p, threads);
    const steps_job j = {
        .p = p, .k = k, .ct = ct, .cp = &cp, .sx = &sx, .sh = &sh, .kind = kind, .d = d, .len = len,
        .hist = hist, .gxr = gxr, .accr = accr, .cprev = cprev, .hnr = hnr, .dout = dout, .act = act,
        .work = work, .rh = rh, .sg = sg, .sgh = sgh, .pg = pg, .pgh = pgh, .dh = dh, .dc = dc, .dtmp = dtmp,
        .xtmp = xtmp, .extra = extra, .pwhr = pwhr, .dm = dm, .dhp = dhp, .pdh = pdh, .dx = dx, .in_f = in_f,
        .ldgx = ldgx, .ldacc = ldacc, .mw = mw, .mg = mg, .pgr = pgr, .gg = gg, .want_w = want_w, .run_x = run_x,
    };
    const int nt = steps_threads(p, threads, in_f);
    if (nt == 1) {
        steps_worker(&j, 0, 1);
    } else {
#pragma omp parallel num_threads(nt)
        steps_worker(&j, FS_THREAD_ID(), FS_THREAD_COUNT());
    }
    if (g->grad_h0) memcpy(g->grad_h0 + ui * B * R, dh, B * R * sizeof(float));
    if (g->grad_c0) memcpy(g->grad_c0 + ui * B * H, dc, B * H * sizeof(float));

    if (!want_w) return FS_OK;
    float *gp = g->grad_params, *ht = ws + p->ht_off;
    fs_status st = side_weights(m, k, wt, p, &sx, l, d, ws + p->xt_off, x, in_f, XROWS, pg, GH, tmp, gp);
    if (st != FS_OK) return st;
    transpose_tm(p, wt, hrows, hist, R, rp, ht, p->tbias);
    if ((st = side_weights(m, k, wt, p, &sh, l, d, ht, hist, rp, hrows, pgh, GH, tmp, gp)) != FS_OK) return st;
    size_t off;
    if (ct->mid_slot >= 0 && !m->cfg.u_rank) { /* reset-before GRU: d W_hn = dn^T (r h) */
        if ((st = param_offset(m, l, d, FS_PARAM_WEIGHT_HH, &off, NULL)) != FS_OK) return st;
        transpose_tm(p, wt, XROWS, rh, H, H, ht, 0);
        weight_grad(k, wt, N, ht, H, 0, pg, GH, tmp, gp + off, p->KH, GH, NULL);
    } else if (ct->mid_slot >= 0) { /* low-rank U: D = dn^T (r h) first, then its two factors' shares */
        size_t off_a;
        if ((st = param_offset(m, l, d, FS_PARAM_WEIGHT_HH_B, &off, NULL)) != FS_OK ||
            (st = param_offset(m, l, d, FS_PARAM_WEIGHT_HH_A, &off_a, NULL)) != FS_OK)
            return st;
        float *rows = ws + p->dhn_off, *dn_rh = rows + p->KH * H; /* weight_grad writes rows KH..GH */
        memset(dn_rh, 0, H * H * sizeof(float));
        transpose_tm(p, wt, XROWS, rh, H, H, ht, 0);
        weight_grad(k, wt, N, ht, H, 0, pg, GH, tmp, rows, p->KH, GH, NULL);
        low_rank_n_grads(u, H, (size_t)m->cfg.u_rank, dn_rh, gp + off + p->KH * (size_t)m->cfg.u_rank, gp + off_a);
    }
    if (P) { /* d W_hr = dh^T m */
        if ((st = param_offset(m, l, d, FS_PARAM_WEIGHT_HR, &off, NULL)) != FS_OK) return st;
        transpose_tm(p, wt, XROWS, ws + p->mid_off + ui * p->c_unit, H, hp, ht, 0);
        weight_grad(k, wt, N, ht, H, 0, pdh, P, tmp, gp + off, 0, P, NULL);
    }
    for (size_t b = 1; b < B; b++) /* the rows' sums, in row order: any split of rows gives these bits */
        for (size_t j = 0; j < E; j++) extra[j] += extra[b * E + j];
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
    const fs_kernels *k = fs__kernels(); /* read once, as the thread count */
    const int threads = fs__max_threads();
    float *ws = tape->data;
    const size_t N = p->N, DR = p->DR;
    if (args->grad_params && !args->accumulate) memset(args->grad_params, 0, n_params * sizeof(float));

    for (size_t l = p->L; l-- > 0;) {
        const size_t in_f = l ? DR : p->I;
        const float *x = l ? ws + p->y_off + (l - 1) * N * DR : ws + p->x_off;
        const float *dout = l + 1 == p->L ? args->grad_y : ws + p->dbuf_off[l % 2];
        float *dx = l ? ws + p->dbuf_off[(l - 1) % 2] : args->grad_x;
        if (args->grad_params) transpose_tm(p, weights_threads(p, threads), XROWS, x, in_f, in_f, ws + p->xt_off, p->tbias);
        for (size_t d = 0; d < p->D; d++)
            if ((st = backward_unit(model, k, threads, ct, tape, l, d, x, dout, dx, args)) != FS_OK) return st;
        if (l && model->cfg.residual && dout) /* output = layer(x) + x: x's gradient gains dout */
            for (size_t i = 0; i < N * DR; i++) dx[i] += dout[i];
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
            const float *hist = tape->data + p->hist_off + l * p->hist_unit; /* one direction: step t is slot t */
            if (h) memcpy(h + at * p->R, hist + ((size_t)t * p->B + b) * p->rp, p->R * sizeof(float));
            if (c) memcpy(c + at * p->H, tape->data + p->cprev_off + l * p->c_unit + n * p->hp, p->H * sizeof(float));
        }
    return FS_OK;
}
