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

#undef FS_NAME
#undef FS_CAT
#undef FS_CAT2
