/* Per-cell forward-with-record and backward steps for training (portable C,
 * libm nonlinearities): the reference for every other path. One function pair
 * per cell kind; fs__cell_train picks the pair for a model. */
#include <math.h>

#include "rnn_backward.h"
#include "kernels/kernels.h"

#define FS_SUFFIX __generic
#include "train_cells_bwd.h"
#undef FS_SUFFIX

#define PK(j, g, G) (((j) / FS_NB) * (G) * FS_NB + (g) * FS_NB + (j) % FS_NB)

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ---- RNN (tanh, relu): act = h_new ------------------------------------------ */

static void rnn_forward(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                        float *c, float *act) {
    (void)c;
    const int relu = cx->model->cfg.cell == FS_CELL_RNN_RELU;
    for (size_t j = 0; j < cx->H; j++) {
        const float pre = gx[PK(j, 0, 1)] + acc[PK(j, 0, 1)];
        const float v = relu ? ((pre > 0.0f || isnan(pre)) ? pre : 0.0f) : tanhf(pre);
        h[j] = v;
        act[j] = v;
    }
}


/* ---- LSTM (i, f, g, o): act = i, f, g, o, tanh(c_new) ------------------------ */

static void lstm_forward(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                         float *c, float *act) {
    const size_t H = cx->H;
    float *ai = act, *af = act + H, *ag = act + 2 * H, *ao = act + 3 * H, *at = act + 4 * H;
    for (size_t j = 0; j < H; j++) {
        const float i = sigmoidf(gx[PK(j, 0, 4)] + acc[PK(j, 0, 4)]);
        const float f = sigmoidf(gx[PK(j, 1, 4)] + acc[PK(j, 1, 4)]);
        const float g = tanhf(gx[PK(j, 2, 4)] + acc[PK(j, 2, 4)]);
        const float o = sigmoidf(gx[PK(j, 3, 4)] + acc[PK(j, 3, 4)]);
        const float cn = f * c[j] + i * g;
        const float tc = tanhf(cn);
        c[j] = cn;
        h[j] = o * tc;
        ai[j] = i, af[j] = f, ag[j] = g, ao[j] = o, at[j] = tc;
    }
}


/* ---- GRU, reset after the product (r, z, n): act = r, z, n, W_hn h + b_hn ---- */

static void gru_forward(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                        float *c, float *act) {
    (void)c;
    const size_t H = cx->H;
    float *ar = act, *az = act + H, *an = act + 2 * H, *ahn = act + 3 * H;
    for (size_t j = 0; j < H; j++) {
        const float r = sigmoidf(gx[PK(j, 0, 3)] + acc[PK(j, 0, 3)]);
        const float z = sigmoidf(gx[PK(j, 1, 3)] + acc[PK(j, 1, 3)]);
        const float hn = acc[PK(j, 2, 3)];
        const float n = tanhf(gx[PK(j, 2, 3)] + r * hn);
        h[j] = (1.0f - z) * n + z * h[j];
        ar[j] = r, az[j] = z, an[j] = n, ahn[j] = hn;
    }
}


/* ---- LSTM with peepholes and/or coupled gates: act = i, f, g, o, tanh(c_new), c_new -- */

static void lstm_ext_forward(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                             float *c, float *act) {
    const size_t H = cx->H, G = cx->G;
    const int coupled = cx->model->cfg.coupled;
    const size_t gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    const float *pi = cx->unit->vec[FS_VEC_PI], *pf = cx->unit->vec[FS_VEC_PF];
    const float *po = cx->unit->vec[FS_VEC_PO];
    for (size_t j = 0; j < H; j++) {
        const float cp = c[j];
        const float i = sigmoidf(gx[PK(j, 0, G)] + acc[PK(j, 0, G)] + pi[j] * cp);
        const float f = coupled ? 1.0f - i : sigmoidf(gx[PK(j, 1, G)] + acc[PK(j, 1, G)] + pf[j] * cp);
        const float g = tanhf(gx[PK(j, gg, G)] + acc[PK(j, gg, G)]);
        const float cn = f * cp + i * g;
        const float o = sigmoidf(gx[PK(j, go, G)] + acc[PK(j, go, G)] + po[j] * cn);
        const float tc = tanhf(cn);
        c[j] = cn;
        h[j] = o * tc;
        act[j] = i, act[H + j] = f, act[2 * H + j] = g, act[3 * H + j] = o;
        act[4 * H + j] = tc, act[5 * H + j] = cn;
    }
}

/* ---- GRU, reset before the product: act = r, z, n, r h ------------------------------
 * acc holds the r, z panels; n's product W_hn (r h) runs here, one row. */

static void gru_rb_forward(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                           float *c, float *act) {
    (void)c;
    const size_t H = cx->H, hp = cx->model->hp;
    float *ar = act, *az = act + H, *an = act + 2 * H, *arh = act + 3 * H, *hn = cx->work;
    for (size_t j = 0; j < H; j++) {
        ar[j] = sigmoidf(gx[PK(j, 0, 3)] + acc[PK(j, 0, 2)]);
        az[j] = sigmoidf(gx[PK(j, 1, 3)] + acc[PK(j, 1, 2)]);
        arh[j] = ar[j] * h[j];
    }
    fs__kernels()->gemm(1, H, arh, H, cx->unit->w_hn_packed, 1, hp / FS_NB, NULL, hn, hp);
    for (size_t j = 0; j < H; j++) {
        an[j] = tanhf(gx[PK(j, 2, 3)] + hn[j]);
        h[j] = (1.0f - az[j]) * an[j] + az[j] * h[j];
    }
}

/* ---- FastRNN (act = h~) and FastGRNN (act = z, h~) ------------------------------------ */

static float actf(int kind, float x) {
    switch (kind) {
    case FS_ACT_SIGMOID: return sigmoidf(x);
    case FS_ACT_RELU: return (x > 0.0f || isnan(x)) ? x : 0.0f;
    default: return tanhf(x);
    }
}

static void fastrnn_forward(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                            float *c, float *act) {
    (void)c;
    const int kind = cx->model->cfg.update_act;
    const float a = cx->unit->coef[0], b = cx->unit->coef[1];
    for (size_t j = 0; j < cx->H; j++) {
        act[j] = actf(kind, gx[j] + acc[j]);
        h[j] = a * act[j] + b * h[j];
    }
}

static void fastgrnn_forward(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                             float *c, float *act) {
    (void)c;
    const size_t H = cx->H;
    const int gk = cx->model->cfg.gate_act, uk = cx->model->cfg.update_act;
    const float ze = cx->unit->coef[0], nu = cx->unit->coef[1];
    const float *bg = cx->unit->vec[FS_VEC_BIAS_GATE], *bu = cx->unit->vec[FS_VEC_BIAS_UPDATE];
    for (size_t j = 0; j < H; j++) {
        const float pre = gx[j] + acc[j];
        const float z = actf(gk, pre + bg[j]), u = actf(uk, pre + bu[j]);
        act[j] = z, act[H + j] = u;
        h[j] = z * h[j] + (ze * (1.0f - z) + nu) * u;
    }
}

/* ---- the table ------------------------------------------------------------------ */

static const fs_cell_train generic[FS_TRAIN_KINDS] = {
    [FS_TRAIN_RNN] = {1, 0, -1, 0, {0}, rnn_forward, rnn_backward__generic},
    [FS_TRAIN_LSTM] = {5, 0, -1, 0, {0}, lstm_forward, lstm_backward__generic},
    [FS_TRAIN_GRU] = {4, 1, -1, 0, {0}, gru_forward, gru_backward__generic},
    [FS_TRAIN_LSTM_EXT] = {6, 0, -1, 3, FS_TRAIN_EXTRA_LSTM_EXT, lstm_ext_forward, lstm_ext_backward__generic},
    [FS_TRAIN_GRU_RB] = {4, 0, 3, 0, {0}, gru_rb_forward, gru_rb_backward__generic},
    [FS_TRAIN_FASTRNN] = {1, 0, -1, 3, FS_TRAIN_EXTRA_FASTRNN, fastrnn_forward, fastrnn_backward__generic},
    [FS_TRAIN_FASTGRNN] = {2, 0, -1, 4, FS_TRAIN_EXTRA_FASTGRNN, fastgrnn_forward,
                           fastgrnn_backward__generic},
};

size_t fs__cell_extra_floats(const fs_cell_train *ct, size_t H) {
    size_t n = 0;
    for (int e = 0; e < ct->n_extra; e++) n += ct->extra[e] >= FS_PARAM_ALPHA ? 1 : H;
    return n;
}

int fs__cell_train_kind(const fs_rnn *m) {
    const fs_rnn_config *c = &m->cfg;
    switch (c->cell) {
    case FS_CELL_RNN_TANH:
    case FS_CELL_RNN_RELU:
        return FS_TRAIN_RNN;
    case FS_CELL_LSTM: return (c->peephole || c->coupled) ? FS_TRAIN_LSTM_EXT : FS_TRAIN_LSTM;
    case FS_CELL_GRU: return c->reset_before ? FS_TRAIN_GRU_RB : FS_TRAIN_GRU;
    case FS_CELL_FASTRNN: return FS_TRAIN_FASTRNN;
    case FS_CELL_FASTGRNN: return FS_TRAIN_FASTGRNN;
    default: return -1;
    }
}

const fs_cell_train *fs__cell_train(const fs_rnn *m) {
    const int kind = fs__cell_train_kind(m);
    if (kind < 0) return NULL;
#if defined(FS_HAVE_AVX2)
    if (fs_active_isa() >= FS_ISA_AVX2) {
        const fs_cell_train *t = fs__cell_train_avx2(kind);
        if (t && t->forward) return t;
    }
#endif
    return &generic[kind];
}
