/* Training cells, portable C (libm nonlinearities): the record and backward
 * slots of the generic level (kernels.h), the reference for every other. The
 * record steps recompute, from what the forward recorded, the activations the
 * backward steps read; the backward steps are backward_loops.h's loops. */
#include <math.h>

#include "../kernels.h"
#include "act.h"

#define FS_SUFFIX __generic
#include "backward_loops.h"
#undef FS_SUFFIX

#define PK(j, g, G) (((j) / FS_NB) * (G) * FS_NB + (g) * FS_NB + (j) % FS_NB)

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static float actf(int kind, float x) {
    switch (kind) {
    case FS_ACT_SIGMOID: return sigmoidf(x);
    case FS_ACT_RELU: return (x > 0.0f || isnan(x)) ? x : 0.0f;
    default: return tanhf(x);
    }
}

/* RNN (tanh, relu): act = h_new. */
static void rnn_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc, const float *hn,
                       const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    for (size_t j = 0; j < H; j++) act[j] = actf(cp->relu ? FS_ACT_RELU : FS_ACT_TANH, gx[PK(j, 0, 1)] + acc[PK(j, 0, 1)]);
}

/* LSTM (i, f, g, o): act = i, f, g, o, tanh(c_new). */
static void lstm_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc, const float *hn,
                        const float *h, const float *c, float *act) {
    (void)cp, (void)hn, (void)h;
    for (size_t j = 0; j < H; j++) {
        const float i = sigmoidf(gx[PK(j, 0, 4)] + acc[PK(j, 0, 4)]);
        const float f = sigmoidf(gx[PK(j, 1, 4)] + acc[PK(j, 1, 4)]);
        const float g = tanhf(gx[PK(j, 2, 4)] + acc[PK(j, 2, 4)]);
        const float o = sigmoidf(gx[PK(j, 3, 4)] + acc[PK(j, 3, 4)]);
        act[j] = i, act[H + j] = f, act[2 * H + j] = g, act[3 * H + j] = o;
        act[4 * H + j] = tanhf(f * c[j] + i * g);
    }
}

/* GRU, reset after the product (r, z, n): act = r, z, n, W_hn h + b_hn. */
static void gru_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc, const float *hn,
                       const float *h, const float *c, float *act) {
    (void)cp, (void)hn, (void)h, (void)c;
    for (size_t j = 0; j < H; j++) {
        const float r = sigmoidf(gx[PK(j, 0, 3)] + acc[PK(j, 0, 3)]);
        const float z = sigmoidf(gx[PK(j, 1, 3)] + acc[PK(j, 1, 3)]);
        const float hj = acc[PK(j, 2, 3)];
        act[j] = r, act[H + j] = z, act[2 * H + j] = tanhf(gx[PK(j, 2, 3)] + r * hj), act[3 * H + j] = hj;
    }
}

/* LSTM with peepholes and/or coupled gates: act = i, f, g, o, tanh(c_new), c_new. */
static void lstm_ext_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                            const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h;
    const int coupled = cp->coupled;
    const size_t G = coupled ? 3 : 4, gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    for (size_t j = 0; j < H; j++) {
        const float cp_ = c[j];
        const float pi = cp->pi ? cp->pi[j] : 0.0f, pf = cp->pf ? cp->pf[j] : 0.0f, po = cp->po ? cp->po[j] : 0.0f;
        const float i = sigmoidf(gx[PK(j, 0, G)] + acc[PK(j, 0, G)] + pi * cp_);
        const float f = coupled ? 1.0f - i : sigmoidf(gx[PK(j, 1, G)] + acc[PK(j, 1, G)] + pf * cp_);
        const float g = tanhf(gx[PK(j, gg, G)] + acc[PK(j, gg, G)]);
        const float cn = f * cp_ + i * g;
        const float o = sigmoidf(gx[PK(j, go, G)] + acc[PK(j, go, G)] + po * cn);
        act[j] = i, act[H + j] = f, act[2 * H + j] = g, act[3 * H + j] = o;
        act[4 * H + j] = tanhf(cn), act[5 * H + j] = cn;
    }
}

/* GRU, reset before the product: act = r, z, n, r h (acc: the r, z panels). */
static void gru_rb_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                          const float *hn, const float *h, const float *c, float *act) {
    (void)cp, (void)c;
    for (size_t j = 0; j < H; j++) {
        const float r = sigmoidf(gx[PK(j, 0, 3)] + acc[PK(j, 0, 2)]);
        act[j] = r, act[H + j] = sigmoidf(gx[PK(j, 1, 3)] + acc[PK(j, 1, 2)]);
        act[2 * H + j] = tanhf(gx[PK(j, 2, 3)] + hn[j]), act[3 * H + j] = r * h[j];
    }
}

/* FastRNN: act = h~. */
static void fastrnn_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                           const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    const fs_acts *a = cp->acts;
    for (size_t j = 0; j < H; j++) act[j] = fs__act(a->kind[FS_ROLE_G], a->alpha[FS_ROLE_G], a->beta[FS_ROLE_G], gx[j] + acc[j]);
}

/* FastGRNN: act = z, h~. */
static void fastgrnn_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                            const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    const fs_acts *a = cp->acts;
    for (size_t j = 0; j < H; j++) {
        const float pre = gx[j] + acc[j];
        act[j] = fs__act(a->kind[FS_ROLE_F], a->alpha[FS_ROLE_F], a->beta[FS_ROLE_F], pre + cp->bg[j]);
        act[H + j] = fs__act(a->kind[FS_ROLE_G], a->alpha[FS_ROLE_G], a->beta[FS_ROLE_G], pre + cp->bu[j]);
    }
}

/* UGRNN: act = z, c. */
static void ugrnn_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc, const float *hn,
                         const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    const fs_acts *a = cp->acts;
    for (size_t j = 0; j < H; j++) {
        act[j] = fs__act(a->kind[FS_ROLE_F], a->alpha[FS_ROLE_F], a->beta[FS_ROLE_F], gx[PK(j, 0, 2)] + acc[PK(j, 0, 2)]);
        act[H + j] = fs__act(a->kind[FS_ROLE_G], a->alpha[FS_ROLE_G], a->beta[FS_ROLE_G], gx[PK(j, 1, 2)] + acc[PK(j, 1, 2)]);
    }
}

/* ---- chosen activations (fs_acts): the record steps keep each activation's
 * derivative (0 where clip cut its input), the backward steps read them ---- */

/* Role r's activation of x (clipped as in the forward) into *y; returns d y / d x. */
static float role_d(const fs_acts *a, int r, float x, float *y) {
    const int cut = a->clip > 0.0f && (x < -a->clip || x > a->clip);
    *y = fs__role(a, r, x);
    return cut ? 0.0f : fs__dact(a->kind[r], a->alpha[r], *y);
}

/* RNN: act = h_new, d h_new / d pre. */
static void rnn_act_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc, const float *hn,
                           const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    for (size_t j = 0; j < H; j++) act[H + j] = role_d(cp->acts, FS_ROLE_F, gx[PK(j, 0, 1)] + acc[PK(j, 0, 1)], &act[j]);
}


/* LSTM, any variant: act = i, f, g, o, h(c_new), c_new, then the derivatives
 * of i, f, g, o by their pre-activations and of h(c) by c. */
static void lstm_act_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                            const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h;
    const fs_acts *a = cp->acts;
    const int coupled = cp->coupled;
    const size_t G = coupled ? 3 : 4, gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    float *di = act + 6 * H, *df = act + 7 * H, *dg = act + 8 * H, *dout = act + 9 * H, *dhc = act + 10 * H;
    for (size_t j = 0; j < H; j++) {
        const float c0 = c[j];
        const float pi = cp->pi ? cp->pi[j] : 0.0f, pf = cp->pf ? cp->pf[j] : 0.0f, po = cp->po ? cp->po[j] : 0.0f;
        float i, f, g, o;
        di[j] = role_d(a, FS_ROLE_F, gx[PK(j, 0, G)] + acc[PK(j, 0, G)] + pi * c0, &i);
        if (coupled) f = 1.0f - i, df[j] = 0.0f;
        else df[j] = role_d(a, FS_ROLE_F, gx[PK(j, 1, G)] + acc[PK(j, 1, G)] + pf * c0, &f);
        dg[j] = role_d(a, FS_ROLE_G, gx[PK(j, gg, G)] + acc[PK(j, gg, G)], &g);
        const float cn = f * c0 + i * g;
        dout[j] = role_d(a, FS_ROLE_F, gx[PK(j, go, G)] + acc[PK(j, go, G)] + po * cn, &o);
        const float hc = fs__act(a->kind[FS_ROLE_H], a->alpha[FS_ROLE_H], a->beta[FS_ROLE_H], cn);
        dhc[j] = fs__dact(a->kind[FS_ROLE_H], a->alpha[FS_ROLE_H], hc);
        act[j] = i, act[H + j] = f, act[2 * H + j] = g, act[3 * H + j] = o;
        act[4 * H + j] = hc, act[5 * H + j] = cn;
    }
}


/* GRU, reset after the product: act = r, z, n, W_hn h + b_hn, then d r, d z, d n
 * by their pre-activations. */
static void gru_act_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc, const float *hn,
                           const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    const fs_acts *a = cp->acts;
    for (size_t j = 0; j < H; j++) {
        float r, z, n;
        const float hj = acc[PK(j, 2, 3)];
        act[4 * H + j] = role_d(a, FS_ROLE_F, gx[PK(j, 0, 3)] + acc[PK(j, 0, 3)], &r);
        act[5 * H + j] = role_d(a, FS_ROLE_F, gx[PK(j, 1, 3)] + acc[PK(j, 1, 3)], &z);
        act[6 * H + j] = role_d(a, FS_ROLE_G, gx[PK(j, 2, 3)] + r * hj, &n);
        act[j] = r, act[H + j] = z, act[2 * H + j] = n, act[3 * H + j] = hj;
    }
}


/* GRU, reset before the product: act = r, z, n, r h, then d r, d z, d n. */
static void gru_rb_act_record(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                              const float *hn, const float *h, const float *c, float *act) {
    (void)c;
    const fs_acts *a = cp->acts;
    for (size_t j = 0; j < H; j++) {
        float r, z, n;
        act[4 * H + j] = role_d(a, FS_ROLE_F, gx[PK(j, 0, 3)] + acc[PK(j, 0, 2)], &r);
        act[5 * H + j] = role_d(a, FS_ROLE_F, gx[PK(j, 1, 3)] + acc[PK(j, 1, 2)], &z);
        act[6 * H + j] = role_d(a, FS_ROLE_G, gx[PK(j, 2, 3)] + hn[j], &n);
        act[j] = r, act[H + j] = z, act[2 * H + j] = n, act[3 * H + j] = r * h[j];
    }
}


void fs__train_cells_init_generic(fs_kernels *k) {
    static const fs_cell_record_fn rec[FS_TRAIN_KINDS] = {
        rnn_record, lstm_record, gru_record, lstm_ext_record, gru_rb_record, fastrnn_record, fastgrnn_record,
        rnn_act_record, lstm_act_record, gru_act_record, gru_rb_act_record, ugrnn_record};
    static const fs_cell_backward_fn bwd[FS_TRAIN_KINDS] = {
        rnn_backward__generic, lstm_backward__generic, gru_backward__generic, lstm_ext_backward__generic,
        gru_rb_backward__generic, fastrnn_backward__generic, fastgrnn_backward__generic,
        rnn_act_backward__generic, lstm_act_backward__generic, gru_act_backward__generic,
        gru_rb_act_backward__generic, ugrnn_backward__generic};
    for (int i = 0; i < FS_TRAIN_KINDS; i++) k->cell_record[i] = rec[i], k->cell_backward[i] = bwd[i];
}
