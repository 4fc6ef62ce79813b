/* The backward steps of the trainable cells, as plain C loops over the units of
 * one row. Included by train_cells.c (portable build) and by
 * kernels/train_avx2.c (built with -mavx2 -mfma, where the compiler vectorises
 * the same loops): one source of truth per cell, compiled once per ISA.
 * Layouts: see rnn_backward.h. FS_SUFFIX names the copy. The buffers of one
 * call never overlap (restrict lets the loops vectorise; dgh is only touched by
 * cells with split_dgh, where it is a buffer of its own). */
#ifndef FS_SUFFIX
#error "define FS_SUFFIX before including train_cells_bwd.h"
#endif
#define FS_CAT2(a, b) a##b
#define FS_CAT(a, b) FS_CAT2(a, b)
#define FS_NAME(n) FS_CAT(n, FS_SUFFIX)

/* RNN (tanh, relu): act = h_new. */
static void FS_NAME(rnn_backward)(const fs_cell_ctx *cx, const float *restrict act,
                                  const float *h_prev, const float *c_prev, float *restrict dh,
                                  float *dc, float *restrict dgx, float *dgh, float *extra) {
    (void)h_prev, (void)c_prev, (void)dc, (void)dgh, (void)extra;
    const size_t H = cx->H;
    if (cx->model->cfg.cell == FS_CELL_RNN_RELU) {
        for (size_t j = 0; j < H; j++) dgx[j] = act[j] > 0.0f ? dh[j] : 0.0f;
    } else {
        for (size_t j = 0; j < H; j++) dgx[j] = dh[j] * (1.0f - act[j] * act[j]);
    }
    for (size_t j = 0; j < H; j++) dh[j] = 0.0f;
}

/* LSTM (i, f, g, o): act = i, f, g, o, tanh(c_new). */
static void FS_NAME(lstm_backward)(const fs_cell_ctx *cx, const float *restrict act,
                                   const float *h_prev, const float *restrict c_prev,
                                   float *restrict dh, float *restrict dc, float *restrict dgx,
                                   float *dgh, float *extra) {
    (void)h_prev, (void)dgh, (void)extra;
    const size_t H = cx->H;
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
static void FS_NAME(gru_backward)(const fs_cell_ctx *cx, const float *restrict act,
                                  const float *restrict h_prev, const float *c_prev,
                                  float *restrict dh, float *dc, float *restrict dgx,
                                  float *restrict dgh, float *extra) {
    (void)c_prev, (void)dc, (void)extra;
    const size_t H = cx->H;
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
static void FS_NAME(lstm_ext_backward)(const fs_cell_ctx *cx, const float *restrict act,
                                       const float *h_prev, const float *restrict c_prev,
                                       float *restrict dh, float *restrict dc, float *restrict dgx,
                                       float *dgh, float *restrict extra) {
    (void)h_prev, (void)dgh;
    const size_t H = cx->H;
    const int coupled = cx->model->cfg.coupled;
    const float *restrict pi = cx->unit->vec[FS_VEC_PI], *restrict pf = cx->unit->vec[FS_VEC_PF];
    const float *restrict po = cx->unit->vec[FS_VEC_PO];
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

/* GRU, reset before the product (r, z, n): act = r, z, n, r h. The cell owns
 * W_hn: d(r h) = W_hn^T dn here (work), then dr and the bypass dh. */
static void FS_NAME(gru_rb_backward)(const fs_cell_ctx *cx, const float *restrict act,
                                     const float *restrict h_prev, const float *c_prev,
                                     float *restrict dh, float *dc, float *restrict dgx,
                                     float *dgh, float *extra) {
    (void)c_prev, (void)dc, (void)dgh, (void)extra;
    const size_t H = cx->H;
    const float *restrict whn = cx->unit->w_hn_packed; /* packed: row j at block j/8, lane j%8 */
    float *restrict drh = cx->work, *dn = dgx + 2 * H;
    for (size_t j = 0; j < H; j++) {
        const float z = act[H + j], n = act[2 * H + j], d = dh[j];
        dn[j] = d * (1.0f - z) * (1.0f - n * n);
        dgx[H + j] = d * (h_prev[j] - n) * z * (1.0f - z);
        drh[j] = 0.0f;
    }
    for (size_t j = 0; j < H; j++) {
        const float w = dn[j];
        const float *restrict row = whn + (j / FS_NB) * H * FS_NB + j % FS_NB;
        for (size_t k = 0; k < H; k++) drh[k] += w * row[k * FS_NB];
    }
    for (size_t j = 0; j < H; j++) {
        const float r = act[j];
        dgx[j] = drh[j] * h_prev[j] * r * (1.0f - r);
        dh[j] = dh[j] * act[H + j] + drh[j] * r;
    }
}

/* d act / d pre from the activation's output y (fs_act). */
static inline float FS_NAME(dact)(int kind, float y) {
    return kind == FS_ACT_SIGMOID ? y * (1.0f - y) : kind == FS_ACT_RELU ? (y > 0.0f ? 1.0f : 0.0f)
                                                                         : 1.0f - y * y;
}

/* FastRNN: act = h~; extra = d bias, d alpha, d beta. */
static void FS_NAME(fastrnn_backward)(const fs_cell_ctx *cx, const float *restrict act,
                                      const float *restrict h_prev, const float *c_prev,
                                      float *restrict dh, float *dc, float *restrict dgx,
                                      float *dgh, float *restrict extra) {
    (void)c_prev, (void)dc, (void)dgh;
    const size_t H = cx->H;
    const int kind = cx->model->cfg.update_act;
    const float a = cx->unit->coef[0], b = cx->unit->coef[1];
    float sa = 0.0f, sb = 0.0f;
    for (size_t j = 0; j < H; j++) {
        const float d = dh[j], ht = act[j];
        const float dp = d * a * FS_NAME(dact)(kind, ht);
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
static void FS_NAME(fastgrnn_backward)(const fs_cell_ctx *cx, const float *restrict act,
                                       const float *restrict h_prev, const float *c_prev,
                                       float *restrict dh, float *dc, float *restrict dgx,
                                       float *dgh, float *restrict extra) {
    (void)c_prev, (void)dc, (void)dgh;
    const size_t H = cx->H;
    const int gk = cx->model->cfg.gate_act, uk = cx->model->cfg.update_act;
    const float ze = cx->unit->coef[0], nu = cx->unit->coef[1];
    float sz = 0.0f, sn = 0.0f;
    for (size_t j = 0; j < H; j++) {
        const float d = dh[j], z = act[j], u = act[H + j];
        const float dzp = d * (h_prev[j] - ze * u) * FS_NAME(dact)(gk, z);
        const float dup = d * (ze * (1.0f - z) + nu) * FS_NAME(dact)(uk, u);
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

#undef FS_NAME
#undef FS_CAT
#undef FS_CAT2
