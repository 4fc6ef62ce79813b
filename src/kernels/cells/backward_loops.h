/* The backward steps of the trainable cells (kernels.h: fs_cell_backward_fn),
 * as plain C loops over the units of one row. Included by train_generic.c and
 * train_avx2.c (built with -mavx2 -mfma, where the compiler vectorises the
 * same loops): one source per cell, compiled once per level. FS_SUFFIX names
 * the copy. The buffers of one
 * call never overlap (restrict lets the loops vectorise; dgh is only touched by
 * cells with split_dgh, where it is a buffer of its own). */
#ifndef FS_SUFFIX
#error "define FS_SUFFIX before including backward_loops.h"
#endif
#include "act.h"

#define FS_CAT2(a, b) a##b
#define FS_CAT(a, b) FS_CAT2(a, b)
#define FS_NAME(n) FS_CAT(n, FS_SUFFIX)
#define FS_ROUND8(n) (((n) + FS_NB - 1) / FS_NB * FS_NB)

/* RNN (tanh, relu): act = h_new. */
static void FS_NAME(rnn_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *h_prev, const float *c_prev, float *restrict dh, float *dc,
        float *restrict dgx, float *dgh, float *extra, float *work) {
    (void)h_prev, (void)c_prev, (void)dc, (void)dgh, (void)extra, (void)work;
    if (cp->relu) {
        for (size_t j = 0; j < H; j++) dgx[j] = act[j] > 0.0f ? dh[j] : 0.0f;
    } else {
        for (size_t j = 0; j < H; j++) dgx[j] = dh[j] * (1.0f - act[j] * act[j]);
    }
    for (size_t j = 0; j < H; j++) dh[j] = 0.0f;
}

/* LSTM (i, f, g, o): act = i, f, g, o, tanh(c_new). */
static void FS_NAME(lstm_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *h_prev, const float *restrict c_prev, float *restrict dh, float *restrict dc,
        float *restrict dgx, float *dgh, float *extra, float *work) {
    (void)cp, (void)h_prev, (void)dgh, (void)extra, (void)work;
    for (size_t j = 0; j < H; j++) {
        const float i = act[j], f = act[H + j], g = act[2 * H + j], o = act[3 * H + j];
        const float tc = act[4 * H + j], d = dh[j];
        const float dct = dc[j] + d * o * (1.0f - tc * tc);
        dgx[j] = dct * g * i * (1.0f - i);
        dgx[H + j] = dct * c_prev[j] * f * (1.0f - f);
        dgx[2 * H + j] = dct * i * (1.0f - g * g);
        dgx[3 * H + j] = d * tc * o * (1.0f - o);
        dc[j] = dct * f;
        dh[j] = 0.0f;
    }
}

/* GRU, reset after the product (r, z, n): act = r, z, n, W_hn h + b_hn. */
static void FS_NAME(gru_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *restrict h_prev, const float *c_prev, float *restrict dh, float *dc,
        float *restrict dgx, float *restrict dgh, float *extra, float *work) {
    (void)cp, (void)c_prev, (void)dc, (void)extra, (void)work;
    for (size_t j = 0; j < H; j++) {
        const float r = act[j], z = act[H + j], n = act[2 * H + j], hn = act[3 * H + j], d = dh[j];
        const float dn = d * (1.0f - z) * (1.0f - n * n);
        const float dr = dn * hn * r * (1.0f - r);
        const float dz = d * (h_prev[j] - n) * z * (1.0f - z);
        dgx[j] = dr;
        dgh[j] = dr;
        dgx[H + j] = dz;
        dgh[H + j] = dz;
        dgx[2 * H + j] = dn;
        dgh[2 * H + j] = dn * r;
        dh[j] = d * z;
    }
}

/* LSTM with peepholes and/or coupled gates (f = 1 - i; dgx rows i, g, o):
 * act = i, f, g, o, tanh(c_new), c_new; extra = dp_i, dp_f, dp_o. */
static void FS_NAME(lstm_ext_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *h_prev, const float *restrict c_prev, float *restrict dh, float *restrict dc,
        float *restrict dgx, float *dgh, float *restrict extra, float *work) {
    (void)h_prev, (void)dgh, (void)work;
    const int coupled = cp->coupled;
    const float *restrict pi = cp->pi, *restrict pf = cp->pf;
    const float *restrict po = cp->po;
    float *dgi = dgx, *dgf = dgx + H, *dgg = dgx + (coupled ? H : 2 * H);
    float *dgo = dgx + (coupled ? 2 * H : 3 * H);
    for (size_t j = 0; j < H; j++) {
        const float i = act[j], f = act[H + j], g = act[2 * H + j], o = act[3 * H + j];
        const float tc = act[4 * H + j], cn = act[5 * H + j], cp = c_prev[j], d = dh[j];
        const float dop = d * tc * o * (1.0f - o);
        const float dct = dc[j] + d * o * (1.0f - tc * tc) + dop * po[j];
        const float dip = dct * (coupled ? g - cp : g) * i * (1.0f - i);
        const float dfp = coupled ? 0.0f : dct * cp * f * (1.0f - f);
        dgi[j] = dip;
        if (!coupled) dgf[j] = dfp;
        dgg[j] = dct * i * (1.0f - g * g);
        dgo[j] = dop;
        dc[j] = dct * f + dip * pi[j] + dfp * pf[j];
        dh[j] = 0.0f;
        extra[j] += dip * cp;
        extra[H + j] += dfp * cp;
        extra[2 * H + j] += dop * cn;
    }
}

/* out = W^T v for a packed one-gate W of `cols` columns and K inputs ([jb][k][8]
 * layout: per block, 8 weights from unit block jb to input k lie together); v:
 * round8(cols) floats, its padding zeroed here (the padding units' weights are zero). */
static void FS_NAME(packed_t_vec)(size_t cols, size_t K, const float *restrict w, float *restrict v,
                                  float *restrict out) {
    for (size_t j = cols; j < FS_ROUND8(cols); j++) v[j] = 0.0f;
    for (size_t k = 0; k < K; k++) out[k] = 0.0f;
    for (size_t jb = 0; jb < FS_ROUND8(cols) / FS_NB; jb++) {
        const float *restrict blk = w + jb * K * FS_NB, *restrict d8 = v + jb * FS_NB;
        for (size_t k = 0; k < K; k++) {
            float acc = 0.0f;
            for (size_t l = 0; l < FS_NB; l++) acc += blk[k * FS_NB + l] * d8[l];
            out[k] += acc;
        }
    }
}

/* d(r h) = W_hn^T dn; a low-rank U: U_a^T (U_b,n^T dn), through t (round8(u_rank) floats). */
static void FS_NAME(whn_t_dn)(size_t H, const fs_cell_params *cp, float *restrict dnp, float *restrict drh,
                              float *restrict t) {
    if (!cp->ua) {
        FS_NAME(packed_t_vec)(H, H, cp->whn, dnp, drh);
        return;
    }
    FS_NAME(packed_t_vec)(H, cp->u_rank, cp->whn, dnp, t);
    FS_NAME(packed_t_vec)(cp->u_rank, H, cp->ua, t, drh);
}

/* GRU, reset before the product (r, z, n): act = r, z, n, r h. The cell owns
 * W_hn: d(r h) = W_hn^T dn here (work: 2 * hp + round8(u_rank) floats), then dr and the bypass dh. */
static void FS_NAME(gru_rb_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *restrict h_prev, const float *c_prev, float *restrict dh, float *dc,
        float *restrict dgx, float *dgh, float *extra, float *work) {
    (void)c_prev, (void)dc, (void)dgh, (void)extra;
    float *restrict drh = work, *restrict dnp = work + FS_ROUND8(H), *dn = dgx + 2 * H;
    for (size_t j = 0; j < H; j++) {
        const float z = act[H + j], n = act[2 * H + j], d = dh[j];
        dn[j] = d * (1.0f - z) * (1.0f - n * n);
        dnp[j] = dn[j];
        dgx[H + j] = d * (h_prev[j] - n) * z * (1.0f - z);
    }
    FS_NAME(whn_t_dn)(H, cp, dnp, drh, work + 2 * FS_ROUND8(H));
    for (size_t j = 0; j < H; j++) {
        const float r = act[j];
        dgx[j] = drh[j] * h_prev[j] * r * (1.0f - r);
        dh[j] = dh[j] * act[H + j] + drh[j] * r;
    }
}


/* FastRNN: act = h~; extra = d bias, d alpha, d beta. */
static void FS_NAME(fastrnn_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *restrict h_prev, const float *c_prev, float *restrict dh, float *dc,
        float *restrict dgx, float *dgh, float *restrict extra, float *work) {
    (void)c_prev, (void)dc, (void)dgh, (void)work;
    const int kind = cp->acts->kind[FS_ROLE_G];
    const float slope = cp->acts->alpha[FS_ROLE_G], a = cp->a, b = cp->b;
    float sa = 0.0f, sb = 0.0f;
    for (size_t j = 0; j < H; j++) {
        const float d = dh[j], ht = act[j];
        const float dp = d * a * fs__dact(kind, slope, ht);
        dgx[j] = dp;
        extra[j] += dp;
        sa += d * ht;
        sb += d * h_prev[j];
        dh[j] = d * b;
    }
    extra[H] += sa * a * (1.0f - a);
    extra[H + 1] += sb * b * (1.0f - b);
}

/* FastGRNN: act = z, h~; extra = d bias_gate, d bias_update, d zeta, d nu. */
static void FS_NAME(fastgrnn_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *restrict h_prev, const float *c_prev, float *restrict dh, float *dc,
        float *restrict dgx, float *dgh, float *restrict extra, float *work) {
    (void)c_prev, (void)dc, (void)dgh, (void)work;
    const int gk = cp->acts->kind[FS_ROLE_F], uk = cp->acts->kind[FS_ROLE_G];
    const float gs = cp->acts->alpha[FS_ROLE_F], us = cp->acts->alpha[FS_ROLE_G];
    const float ze = cp->a, nu = cp->b;
    float sz = 0.0f, sn = 0.0f;
    for (size_t j = 0; j < H; j++) {
        const float d = dh[j], z = act[j], u = act[H + j];
        const float dzp = d * (h_prev[j] - ze * u) * fs__dact(gk, gs, z);
        const float dup = d * (ze * (1.0f - z) + nu) * fs__dact(uk, us, u);
        dgx[j] = dzp + dup;
        extra[j] += dzp;
        extra[H + j] += dup;
        sz += d * (1.0f - z) * u;
        sn += d * u;
        dh[j] = d * z;
    }
    extra[2 * H] += sz * ze * (1.0f - ze);
    extra[2 * H + 1] += sn * nu * (1.0f - nu);
}

/* UGRNN (z, c): act = z, c; h' = z h + (1 - z) c. */
static void FS_NAME(ugrnn_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *restrict h_prev, const float *c_prev, float *restrict dh, float *dc,
        float *restrict dgx, float *dgh, float *extra, float *work) {
    (void)c_prev, (void)dc, (void)dgh, (void)extra, (void)work;
    const int gk = cp->acts->kind[FS_ROLE_F], uk = cp->acts->kind[FS_ROLE_G];
    const float gs = cp->acts->alpha[FS_ROLE_F], us = cp->acts->alpha[FS_ROLE_G];
    for (size_t j = 0; j < H; j++) {
        const float d = dh[j], z = act[j], c = act[H + j];
        dgx[j] = d * (h_prev[j] - c) * fs__dact(gk, gs, z);
        dgx[H + j] = d * (1.0f - z) * fs__dact(uk, us, c);
        dh[j] = d * z;
    }
}

/* ---- chosen activations (fs_acts): the derivatives come from act, where the
 * record step (train_generic.c) put them ---- */
/* RNN: act = h_new, d h_new / d pre. */
static void FS_NAME(rnn_act_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *h_prev, const float *c_prev, float *restrict dh, float *dc, float *restrict dgx,
        float *dgh, float *extra, float *work) {
    (void)cp, (void)h_prev, (void)c_prev, (void)dc, (void)dgh, (void)extra, (void)work;
    for (size_t j = 0; j < H; j++) dgx[j] = dh[j] * act[H + j], dh[j] = 0.0f;
}

/* LSTM, any variant (act: lstm_act_record's): dgx rows i, f, g, o (coupled:
 * i, g, o); extra = dp_i, dp_f, dp_o. */
static void FS_NAME(lstm_act_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *h_prev, const float *restrict c_prev, float *restrict dh, float *restrict dc,
        float *restrict dgx, float *dgh, float *restrict extra, float *work) {
    (void)h_prev, (void)dgh, (void)work;
    const int coupled = cp->coupled;
    float *dgi = dgx, *dgf = dgx + H, *dgg = dgx + (coupled ? H : 2 * H), *dgo = dgx + (coupled ? 2 * H : 3 * H);
    for (size_t j = 0; j < H; j++) {
        const float i = act[j], f = act[H + j], g = act[2 * H + j], o = act[3 * H + j];
        const float hc = act[4 * H + j], cn = act[5 * H + j], c0 = c_prev[j], d = dh[j];
        const float pi = cp->pi ? cp->pi[j] : 0.0f, pf = cp->pf ? cp->pf[j] : 0.0f, po = cp->po ? cp->po[j] : 0.0f;
        const float dop = d * hc * act[9 * H + j];
        const float dct = dc[j] + d * o * act[10 * H + j] + dop * po;
        const float dip = dct * (coupled ? g - c0 : g) * act[6 * H + j];
        const float dfp = coupled ? 0.0f : dct * c0 * act[7 * H + j];
        dgi[j] = dip;
        if (!coupled) dgf[j] = dfp;
        dgg[j] = dct * i * act[8 * H + j];
        dgo[j] = dop;
        dc[j] = dct * f + dip * pi + dfp * pf;
        dh[j] = 0.0f;
        extra[j] += dip * c0;
        extra[H + j] += dfp * c0;
        extra[2 * H + j] += dop * cn;
    }
}

/* GRU, reset after the product: act = r, z, n, W_hn h + b_hn, d r, d z, d n. */
static void FS_NAME(gru_act_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *restrict h_prev, const float *c_prev, float *restrict dh, float *dc,
        float *restrict dgx, float *restrict dgh, float *extra, float *work) {
    (void)cp, (void)c_prev, (void)dc, (void)extra, (void)work;
    for (size_t j = 0; j < H; j++) {
        const float r = act[j], z = act[H + j], n = act[2 * H + j], hn = act[3 * H + j], d = dh[j];
        const float dn = d * (1.0f - z) * act[6 * H + j];
        const float dr = dn * hn * act[4 * H + j];
        const float dz = d * (h_prev[j] - n) * act[5 * H + j];
        dgx[j] = dgh[j] = dr;
        dgx[H + j] = dgh[H + j] = dz;
        dgx[2 * H + j] = dn;
        dgh[2 * H + j] = dn * r;
        dh[j] = d * z;
    }
}

/* GRU, reset before: as gru_rb_backward, the derivatives read from act. */
static void FS_NAME(gru_rb_act_backward)(size_t H, const fs_cell_params *cp, const float *restrict act,
        const float *restrict h_prev, const float *c_prev, float *restrict dh, float *dc,
        float *restrict dgx, float *dgh, float *extra, float *work) {
    (void)c_prev, (void)dc, (void)dgh, (void)extra;
    float *restrict drh = work, *restrict dnp = work + FS_ROUND8(H), *dn = dgx + 2 * H;
    for (size_t j = 0; j < H; j++) {
        const float z = act[H + j], n = act[2 * H + j], d = dh[j];
        dn[j] = dnp[j] = d * (1.0f - z) * act[6 * H + j];
        dgx[H + j] = d * (h_prev[j] - n) * act[5 * H + j];
    }
    FS_NAME(whn_t_dn)(H, cp, dnp, drh, work + 2 * FS_ROUND8(H));
    for (size_t j = 0; j < H; j++) {
        dgx[j] = drh[j] * h_prev[j] * act[4 * H + j];
        dh[j] = dh[j] * act[H + j] + drh[j] * act[j];
    }
}

#undef FS_NAME
#undef FS_ROUND8
#undef FS_CAT
#undef FS_CAT2
