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


/* ---- the table ------------------------------------------------------------------ */

static const fs_cell_train generic[FS_TRAIN_KINDS] = {
    [FS_TRAIN_RNN] = {1, 0, rnn_forward, rnn_backward__generic},
    [FS_TRAIN_LSTM] = {5, 0, lstm_forward, lstm_backward__generic},
    [FS_TRAIN_GRU] = {4, 1, gru_forward, gru_backward__generic},
};

int fs__cell_train_kind(const fs_rnn *m) {
    const fs_rnn_config *c = &m->cfg;
    switch (c->cell) {
    case FS_CELL_RNN_TANH:
    case FS_CELL_RNN_RELU:
        return FS_TRAIN_RNN;
    case FS_CELL_LSTM:
        return (c->proj_size || c->peephole || c->coupled) ? -1 : FS_TRAIN_LSTM;
    case FS_CELL_GRU:
        return c->reset_before ? -1 : FS_TRAIN_GRU;
    default:
        return -1;
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
