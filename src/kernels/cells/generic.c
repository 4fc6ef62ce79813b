/* The inference cell updates, portable C (libm nonlinearities): the reference
 * every SIMD cell kernel is tested against. Their training counterparts
 * (record, backward) are train_generic.c beside this file. */
#include <math.h>

#include "../kernels.h"
#include "act.h"

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static void fs_rnn_cell__generic(size_t m, int relu, const float *gx, size_t ldgx,
                                 const float *acc, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        for (int l = 0; l < FS_NB; l++) {
            const float pre = gx[i * ldgx + l] + acc[i * FS_NB + l];
            h[i * ldh + l] = relu ? ((pre > 0.0f || isnan(pre)) ? pre : 0.0f) : tanhf(pre);
        }
    }
}

static void fs_lstm_cell__generic(size_t m, const float *gx, size_t ldgx, const float *acc,
                                  float *c, size_t ldc, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 4 * FS_NB;
        for (int l = 0; l < FS_NB; l++) {
            const float ig = sigmoidf(g[l] + r[l]);
            const float fg = sigmoidf(g[FS_NB + l] + r[FS_NB + l]);
            const float gg = tanhf(g[2 * FS_NB + l] + r[2 * FS_NB + l]);
            const float og = sigmoidf(g[3 * FS_NB + l] + r[3 * FS_NB + l]);
            const float cn = fg * c[i * ldc + l] + ig * gg;
            c[i * ldc + l] = cn;
            h[i * ldh + l] = og * tanhf(cn);
        }
    }
}

static void fs_gru_cell__generic(size_t m, const float *gx, size_t ldgx, const float *acc,
                                 const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 3 * FS_NB;
        for (int l = 0; l < FS_NB; l++) {
            const float rg = sigmoidf(g[l] + r[l]);
            const float zg = sigmoidf(g[FS_NB + l] + r[FS_NB + l]);
            const float ng = tanhf(g[2 * FS_NB + l] + rg * r[2 * FS_NB + l]);
            h[i * ldh + l] = (1.0f - zg) * ng + zg * h_prev[i * ldhp + l];
        }
    }
}

static void fs_gru_rz_cell__generic(size_t m, const float *gx, size_t ldgx, const float *acc,
                                    const float *h_prev, size_t ldhp, float *rh, float *z, size_t ld) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 2 * FS_NB;
        for (int l = 0; l < FS_NB; l++) {
            rh[i * ld + l] = sigmoidf(g[l] + r[l]) * h_prev[i * ldhp + l];
            z[i * ld + l] = sigmoidf(g[FS_NB + l] + r[FS_NB + l]);
        }
    }
}

static void fs_gru_n_cell__generic(size_t m, const float *gx_n, size_t ldgx, const float *acc,
                                   const float *z, size_t ldz, const float *h_prev, size_t ldhp,
                                   float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++)
        for (int l = 0; l < FS_NB; l++) {
            const float n = tanhf(gx_n[i * ldgx + l] + acc[i * FS_NB + l]), zg = z[i * ldz + l];
            h[i * ldh + l] = (1.0f - zg) * n + zg * h_prev[i * ldhp + l];
        }
}

/* fs__act of role r (FastRNN / FastGRNN have no clip). */
static float role_act(const fs_acts *a, int r, float x) { return fs__act(a->kind[r], a->alpha[r], a->beta[r], x); }

static void fs_fastrnn_cell__generic(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                     const float *acc, const float *h_prev, size_t ldhp, float *h,
                                     size_t ldh, float ca, float cb) {
    for (size_t i = 0; i < m; i++)
        for (int l = 0; l < FS_NB; l++)
            h[i * ldh + l] = ca * role_act(a, FS_ROLE_G, gx[i * ldgx + l] + acc[i * FS_NB + l]) + cb * h_prev[i * ldhp + l];
}

static void fs_fastgrnn_cell__generic(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                      const float *acc, const float *bg, const float *bu, const float *h_prev,
                                      size_t ldhp, float *h, size_t ldh, float zeta, float nu) {
    for (size_t i = 0; i < m; i++)
        for (int l = 0; l < FS_NB; l++) {
            const float pre = gx[i * ldgx + l] + acc[i * FS_NB + l];
            const float z = role_act(a, FS_ROLE_F, pre + bg[l]), u = role_act(a, FS_ROLE_G, pre + bu[l]);
            h[i * ldh + l] = z * h_prev[i * ldhp + l] + (zeta * (1.0f - z) + nu) * u;
        }
}

static void fs_ugrnn_cell__generic(size_t m, const fs_acts *a, const float *gx, size_t ldgx, const float *acc,
                                   const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 2 * FS_NB;
        for (int l = 0; l < FS_NB; l++) {
            const float z = role_act(a, FS_ROLE_F, g[l] + r[l]);
            const float c = role_act(a, FS_ROLE_G, g[FS_NB + l] + r[FS_NB + l]);
            h[i * ldh + l] = z * h_prev[i * ldhp + l] + (1.0f - z) * c;
        }
    }
}

/* ---- the cells with chosen activations (fs_acts): roles f, g, h ---- */

static void fs_rnn_cell_act__generic(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                     const float *acc, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++)
        for (int l = 0; l < FS_NB; l++) h[i * ldh + l] = fs__role(a, FS_ROLE_F, gx[i * ldgx + l] + acc[i * FS_NB + l]);
}

static void fs_lstm_cell_act__generic(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                      const float *acc, float *c, size_t ldc, float *h, size_t ldh,
                                      const float *pi, const float *pf, const float *po, int coupled) {
    const size_t G = coupled ? 3 : 4;
    const size_t gi = 0, gf = 1, gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * G * FS_NB;
        for (int l = 0; l < FS_NB; l++) {
            const float cp = c[i * ldc + l];
            const float ig = fs__role(a, FS_ROLE_F, g[gi * FS_NB + l] + r[gi * FS_NB + l] + (pi ? pi[l] * cp : 0.0f));
            const float fg = coupled ? 1.0f - ig
                                     : fs__role(a, FS_ROLE_F, g[gf * FS_NB + l] + r[gf * FS_NB + l] + (pf ? pf[l] * cp : 0.0f));
            const float cand = fs__role(a, FS_ROLE_G, g[gg * FS_NB + l] + r[gg * FS_NB + l]);
            const float cn = fg * cp + ig * cand;
            const float og = fs__role(a, FS_ROLE_F, g[go * FS_NB + l] + r[go * FS_NB + l] + (po ? po[l] * cn : 0.0f));
            c[i * ldc + l] = cn;
            h[i * ldh + l] = og * fs__act(a->kind[FS_ROLE_H], a->alpha[FS_ROLE_H], a->beta[FS_ROLE_H], cn);
        }
    }
}

static void fs_gru_cell_act__generic(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                     const float *acc, const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 3 * FS_NB;
        for (int l = 0; l < FS_NB; l++) {
            const float rg = fs__role(a, FS_ROLE_F, g[l] + r[l]);
            const float zg = fs__role(a, FS_ROLE_F, g[FS_NB + l] + r[FS_NB + l]);
            const float ng = fs__role(a, FS_ROLE_G, g[2 * FS_NB + l] + rg * r[2 * FS_NB + l]);
            h[i * ldh + l] = (1.0f - zg) * ng + zg * h_prev[i * ldhp + l];
        }
    }
}

static void fs_gru_rz_cell_act__generic(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                        const float *acc, const float *h_prev, size_t ldhp, float *rh,
                                        float *z, size_t ld) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 2 * FS_NB;
        for (int l = 0; l < FS_NB; l++) {
            rh[i * ld + l] = fs__role(a, FS_ROLE_F, g[l] + r[l]) * h_prev[i * ldhp + l];
            z[i * ld + l] = fs__role(a, FS_ROLE_F, g[FS_NB + l] + r[FS_NB + l]);
        }
    }
}

static void fs_gru_n_cell_act__generic(size_t m, const fs_acts *a, const float *gx_n, size_t ldgx,
                                       const float *acc, const float *z, size_t ldz, const float *h_prev,
                                       size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++)
        for (int l = 0; l < FS_NB; l++) {
            const float n = fs__role(a, FS_ROLE_G, gx_n[i * ldgx + l] + acc[i * FS_NB + l]), zg = z[i * ldz + l];
            h[i * ldh + l] = (1.0f - zg) * n + zg * h_prev[i * ldhp + l];
        }
}

/* The peephole / coupled LSTM with the usual functions: the act cell, the same
 * libm calls (fs__act's sigmoid and tanh are sigmoidf and tanhf above). */
static void fs_lstm_cell_ext__generic(size_t m, const float *gx, size_t ldgx, const float *acc,
                                      float *c, size_t ldc, float *h, size_t ldh, const float *pi,
                                      const float *pf, const float *po, int coupled) {
    static const fs_acts usual = {{FS_ACT_SIGMOID, FS_ACT_TANH, FS_ACT_TANH}, {0}, {0}, 0.0f};
    fs_lstm_cell_act__generic(m, &usual, gx, ldgx, acc, c, ldc, h, ldh, pi, pf, po, coupled);
}

void fs__cells_init_generic(fs_kernels *k) {
    k->rnn_cell_act = fs_rnn_cell_act__generic;
    k->lstm_cell_act = fs_lstm_cell_act__generic;
    k->gru_cell_act = fs_gru_cell_act__generic;
    k->gru_rz_cell_act = fs_gru_rz_cell_act__generic;
    k->gru_n_cell_act = fs_gru_n_cell_act__generic;
    k->rnn_cell = fs_rnn_cell__generic;
    k->lstm_cell = fs_lstm_cell__generic;
    k->gru_cell = fs_gru_cell__generic;
    k->lstm_cell_ext = fs_lstm_cell_ext__generic;
    k->gru_rz_cell = fs_gru_rz_cell__generic;
    k->gru_n_cell = fs_gru_n_cell__generic;
    k->fastrnn_cell = fs_fastrnn_cell__generic;
    k->fastgrnn_cell = fs_fastgrnn_cell__generic;
    k->ugrnn_cell = fs_ugrnn_cell__generic;
}
