/* AVX2 + FMA training cells: the recording forward steps with vectorised
 * nonlinearities, one register per gate per block of 8 units; the backward
 * steps are train_cells_bwd.h's loops, vectorised by the compiler. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels/train_avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>
#include <string.h>

#include "../rnn_backward.h"
#include "kernels.h"
#include "vmath_avx2.h"

#define FS_SUFFIX __avx2
#include "../train_cells_bwd.h"
#undef FS_SUFFIX

/* Stores lanes [0, w) of v at p (w == 8: one unaligned store). */
static inline void store_n(float *p, __m256 v, size_t w) {
    if (w == FS_NB) {
        _mm256_storeu_ps(p, v);
    } else {
        float tmp[FS_NB];
        _mm256_storeu_ps(tmp, v);
        memcpy(p, tmp, w * sizeof(float));
    }
}

static inline __m256 pre(const float *gx, const float *acc, size_t at) {
    return _mm256_add_ps(_mm256_loadu_ps(gx + at), _mm256_loadu_ps(acc + at));
}

/* h and c rows are padded to whole blocks (the driver's state rows), act rows are not. */

static void rnn_forward__avx2(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                              float *c, float *act) {
    (void)c;
    const size_t H = cx->H;
    const int relu = cx->model->cfg.cell == FS_CELL_RNN_RELU;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const __m256 p = pre(gx, acc, j0);
        const __m256 v = relu ? _mm256_max_ps(_mm256_setzero_ps(), p) : fs_tanh_ps__avx2(p);
        _mm256_storeu_ps(h + j0, v);
        store_n(act + j0, v, H - j0 < FS_NB ? H - j0 : FS_NB);
    }
}

static void lstm_forward__avx2(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                               float *c, float *act) {
    const size_t H = cx->H;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t at = j0 * 4, w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const __m256 i = fs_sigmoid_ps__avx2(pre(gx, acc, at));
        const __m256 f = fs_sigmoid_ps__avx2(pre(gx, acc, at + FS_NB));
        const __m256 g = fs_tanh_ps__avx2(pre(gx, acc, at + 2 * FS_NB));
        const __m256 o = fs_sigmoid_ps__avx2(pre(gx, acc, at + 3 * FS_NB));
        const __m256 cn = _mm256_fmadd_ps(f, _mm256_loadu_ps(c + j0), _mm256_mul_ps(i, g));
        const __m256 tc = fs_tanh_ps__avx2(cn);
        _mm256_storeu_ps(c + j0, cn);
        _mm256_storeu_ps(h + j0, _mm256_mul_ps(o, tc));
        store_n(act + j0, i, w);
        store_n(act + H + j0, f, w);
        store_n(act + 2 * H + j0, g, w);
        store_n(act + 3 * H + j0, o, w);
        store_n(act + 4 * H + j0, tc, w);
    }
}

static void gru_forward__avx2(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                              float *c, float *act) {
    (void)c;
    const size_t H = cx->H;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t at = j0 * 3, w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const __m256 r = fs_sigmoid_ps__avx2(pre(gx, acc, at));
        const __m256 z = fs_sigmoid_ps__avx2(pre(gx, acc, at + FS_NB));
        const __m256 hn = _mm256_loadu_ps(acc + at + 2 * FS_NB);
        const __m256 n = fs_tanh_ps__avx2(_mm256_fmadd_ps(r, hn, _mm256_loadu_ps(gx + at + 2 * FS_NB)));
        const __m256 hp = _mm256_loadu_ps(h + j0);
        _mm256_storeu_ps(h + j0, _mm256_fmadd_ps(_mm256_sub_ps(one, z), n, _mm256_mul_ps(z, hp)));
        store_n(act + j0, r, w);
        store_n(act + H + j0, z, w);
        store_n(act + 2 * H + j0, n, w);
        store_n(act + 3 * H + j0, hn, w);
    }
}

static void lstm_ext_forward__avx2(const fs_cell_ctx *cx, const float *gx, const float *acc,
                                   float *h, float *c, float *act) {
    const size_t H = cx->H, G = cx->G;
    const int coupled = cx->model->cfg.coupled;
    const size_t gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    const float *pi = cx->unit->vec[FS_VEC_PI], *pf = cx->unit->vec[FS_VEC_PF];
    const float *po = cx->unit->vec[FS_VEC_PO];
    const __m256 one = _mm256_set1_ps(1.0f);
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t at = j0 * G, w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const __m256 cp = _mm256_loadu_ps(c + j0);
        const __m256 i = fs_sigmoid_ps__avx2(_mm256_fmadd_ps(_mm256_loadu_ps(pi + j0), cp, pre(gx, acc, at)));
        const __m256 f = coupled ? _mm256_sub_ps(one, i)
                                 : fs_sigmoid_ps__avx2(_mm256_fmadd_ps(_mm256_loadu_ps(pf + j0), cp,
                                                                       pre(gx, acc, at + FS_NB)));
        const __m256 g = fs_tanh_ps__avx2(pre(gx, acc, at + gg * FS_NB));
        const __m256 cn = _mm256_fmadd_ps(f, cp, _mm256_mul_ps(i, g));
        const __m256 o = fs_sigmoid_ps__avx2(
            _mm256_fmadd_ps(_mm256_loadu_ps(po + j0), cn, pre(gx, acc, at + go * FS_NB)));
        const __m256 tc = fs_tanh_ps__avx2(cn);
        _mm256_storeu_ps(c + j0, cn);
        _mm256_storeu_ps(h + j0, _mm256_mul_ps(o, tc));
        const __m256 slots[6] = {i, f, g, o, tc, cn};
        for (size_t k = 0; k < 6; k++) store_n(act + k * H + j0, slots[k], w);
    }
}

static void gru_rb_forward__avx2(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                                 float *c, float *act) {
    (void)c;
    const size_t H = cx->H, hp = cx->model->hp;
    const __m256 one = _mm256_set1_ps(1.0f);
    float *rh = cx->work, *hn = cx->work + hp;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const __m256 r = fs_sigmoid_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(gx + j0 * 3), _mm256_loadu_ps(acc + j0 * 2)));
        const __m256 z = fs_sigmoid_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(gx + j0 * 3 + FS_NB), _mm256_loadu_ps(acc + j0 * 2 + FS_NB)));
        _mm256_storeu_ps(rh + j0, _mm256_mul_ps(r, _mm256_loadu_ps(h + j0)));
        store_n(act + j0, r, w);
        store_n(act + H + j0, z, w);
        memcpy(act + 3 * H + j0, rh + j0, w * sizeof(float));
    }
    fs__kernels()->gemm(1, H, rh, hp, cx->unit->w_hn_packed, 1, hp / FS_NB, NULL, hn, hp);
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const __m256 n = fs_tanh_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(gx + j0 * 3 + 2 * FS_NB), _mm256_loadu_ps(hn + j0)));
        float zb[FS_NB] = {0};
        memcpy(zb, act + H + j0, w * sizeof(float));
        const __m256 z = _mm256_loadu_ps(zb), hv = _mm256_loadu_ps(h + j0);
        _mm256_storeu_ps(h + j0, _mm256_fmadd_ps(_mm256_sub_ps(one, z), n, _mm256_mul_ps(z, hv)));
        store_n(act + 2 * H + j0, n, w);
    }
}

/* fs_act on 8 lanes (relu keeps NaN, as the portable path does). */
static inline __m256 act_ps(int kind, __m256 x) {
    return kind == FS_ACT_SIGMOID ? fs_sigmoid_ps__avx2(x)
           : kind == FS_ACT_RELU  ? _mm256_max_ps(_mm256_setzero_ps(), x)
                                  : fs_tanh_ps__avx2(x);
}

static void fastrnn_forward__avx2(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h,
                                  float *c, float *act) {
    (void)c;
    const size_t H = cx->H;
    const int kind = cx->model->cfg.update_act;
    const __m256 a = _mm256_set1_ps(cx->unit->coef[0]), b = _mm256_set1_ps(cx->unit->coef[1]);
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const __m256 ht = act_ps(kind, pre(gx, acc, j0));
        _mm256_storeu_ps(h + j0, _mm256_fmadd_ps(a, ht, _mm256_mul_ps(b, _mm256_loadu_ps(h + j0))));
        store_n(act + j0, ht, H - j0 < FS_NB ? H - j0 : FS_NB);
    }
}

static void fastgrnn_forward__avx2(const fs_cell_ctx *cx, const float *gx, const float *acc,
                                   float *h, float *c, float *act) {
    (void)c;
    const size_t H = cx->H;
    const int gk = cx->model->cfg.gate_act, uk = cx->model->cfg.update_act;
    const __m256 ze = _mm256_set1_ps(cx->unit->coef[0]), nu = _mm256_set1_ps(cx->unit->coef[1]);
    const __m256 one = _mm256_set1_ps(1.0f);
    const float *bg = cx->unit->vec[FS_VEC_BIAS_GATE], *bu = cx->unit->vec[FS_VEC_BIAS_UPDATE];
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const __m256 p = pre(gx, acc, j0);
        const __m256 z = act_ps(gk, _mm256_add_ps(p, _mm256_loadu_ps(bg + j0)));
        const __m256 u = act_ps(uk, _mm256_add_ps(p, _mm256_loadu_ps(bu + j0)));
        const __m256 coef = _mm256_fmadd_ps(ze, _mm256_sub_ps(one, z), nu);
        _mm256_storeu_ps(h + j0, _mm256_fmadd_ps(z, _mm256_loadu_ps(h + j0), _mm256_mul_ps(coef, u)));
        store_n(act + j0, z, w);
        store_n(act + H + j0, u, w);
    }
}

static const fs_cell_train avx2[FS_TRAIN_KINDS] = {
    [FS_TRAIN_RNN] = {1, 0, -1, 0, {0}, rnn_forward__avx2, rnn_backward__avx2},
    [FS_TRAIN_LSTM] = {5, 0, -1, 0, {0}, lstm_forward__avx2, lstm_backward__avx2},
    [FS_TRAIN_GRU] = {4, 1, -1, 0, {0}, gru_forward__avx2, gru_backward__avx2},
    [FS_TRAIN_LSTM_EXT] = {6, 0, -1, 3, FS_TRAIN_EXTRA_LSTM_EXT, lstm_ext_forward__avx2,
                           lstm_ext_backward__avx2},
    [FS_TRAIN_GRU_RB] = {4, 0, 3, 0, {0}, gru_rb_forward__avx2, gru_rb_backward__avx2},
    [FS_TRAIN_FASTRNN] = {1, 0, -1, 3, FS_TRAIN_EXTRA_FASTRNN, fastrnn_forward__avx2,
                          fastrnn_backward__avx2},
    [FS_TRAIN_FASTGRNN] = {2, 0, -1, 4, FS_TRAIN_EXTRA_FASTGRNN, fastgrnn_forward__avx2,
                           fastgrnn_backward__avx2},
};

const fs_cell_train *fs__cell_train_avx2(int kind) {
    return kind >= 0 && kind < FS_TRAIN_KINDS ? &avx2[kind] : NULL;
}
