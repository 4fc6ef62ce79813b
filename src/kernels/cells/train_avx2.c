/* AVX2 + FMA training cells: the record steps with vectorised nonlinearities,
 * one register per gate per block of 8 units; the backward steps are
 * backward_loops.h's loops, vectorised by the compiler. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels/cells/train_avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>
#include <string.h>

#include "../kernels.h"
#include "../vmath/avx2.h"

#define FS_SUFFIX __avx2
#include "backward_loops.h"
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

/* fs_act on 8 lanes (relu keeps NaN, as the portable path does). */
static inline __m256 act_ps(int kind, __m256 x) {
    return kind == FS_ACT_SIGMOID ? fs_sigmoid_ps__avx2(x)
           : kind == FS_ACT_RELU  ? _mm256_max_ps(_mm256_setzero_ps(), x)
                                  : fs_tanh_ps__avx2(x);
}

/* Role r's activation (FastRNN / FastGRNN: every fs_act, no clip); the
 * clamping ones pass NaN through, as the portable path does. */
static inline __m256 role_ps(const fs_acts *a, int r, __m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    switch (a->kind[r]) {
    case FS_ACT_HARD_SIGMOID:
        x = _mm256_fmadd_ps(_mm256_set1_ps(a->alpha[r]), x, _mm256_set1_ps(a->beta[r]));
        return _mm256_min_ps(one, _mm256_max_ps(_mm256_setzero_ps(), x));
    case FS_ACT_SOFTSIGN:
        return _mm256_div_ps(x, _mm256_add_ps(one, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)));
    case FS_ACT_HARD_TANH: return _mm256_min_ps(one, _mm256_max_ps(_mm256_set1_ps(-1.0f), x));
    default: return act_ps(a->kind[r], x);
    }
}

/* h, c, hn rows are padded to whole blocks (hp), act rows are not. */

static void rnn_record__avx2(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                             const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB)
        store_n(act + j0, act_ps(cp->relu ? FS_ACT_RELU : FS_ACT_TANH, pre(gx, acc, j0)),
                H - j0 < FS_NB ? H - j0 : FS_NB);
}

static void lstm_record__avx2(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                              const float *hn, const float *h, const float *c, float *act) {
    (void)cp, (void)hn, (void)h;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t at = j0 * 4, w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const __m256 i = fs_sigmoid_ps__avx2(pre(gx, acc, at));
        const __m256 f = fs_sigmoid_ps__avx2(pre(gx, acc, at + FS_NB));
        const __m256 g = fs_tanh_ps__avx2(pre(gx, acc, at + 2 * FS_NB));
        const __m256 o = fs_sigmoid_ps__avx2(pre(gx, acc, at + 3 * FS_NB));
        const __m256 cn = _mm256_fmadd_ps(f, _mm256_loadu_ps(c + j0), _mm256_mul_ps(i, g));
        const __m256 slots[5] = {i, f, g, o, fs_tanh_ps__avx2(cn)};
        for (size_t k = 0; k < 5; k++) store_n(act + k * H + j0, slots[k], w);
    }
}

static void gru_record__avx2(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                             const float *hn, const float *h, const float *c, float *act) {
    (void)cp, (void)hn, (void)h, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t at = j0 * 3, w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const __m256 r = fs_sigmoid_ps__avx2(pre(gx, acc, at));
        const __m256 z = fs_sigmoid_ps__avx2(pre(gx, acc, at + FS_NB));
        const __m256 hj = _mm256_loadu_ps(acc + at + 2 * FS_NB);
        const __m256 n = fs_tanh_ps__avx2(_mm256_fmadd_ps(r, hj, _mm256_loadu_ps(gx + at + 2 * FS_NB)));
        const __m256 slots[4] = {r, z, n, hj};
        for (size_t k = 0; k < 4; k++) store_n(act + k * H + j0, slots[k], w);
    }
}

static void lstm_ext_record__avx2(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                                  const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h;
    const int coupled = cp->coupled;
    const size_t G = coupled ? 3 : 4, gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t at = j0 * G, w = H - j0 < FS_NB ? H - j0 : FS_NB;
        float p3[3][FS_NB] = {{0}}; /* peepholes of this block, zero past H */
        const float *pv[3] = {cp->pi, cp->pf, cp->po};
        for (int q = 0; q < 3; q++)
            if (pv[q]) memcpy(p3[q], pv[q] + j0, w * sizeof(float));
        const __m256 cprev = _mm256_loadu_ps(c + j0);
        const __m256 i = fs_sigmoid_ps__avx2(_mm256_fmadd_ps(_mm256_loadu_ps(p3[0]), cprev, pre(gx, acc, at)));
        const __m256 f = coupled ? _mm256_sub_ps(one, i)
                                 : fs_sigmoid_ps__avx2(_mm256_fmadd_ps(_mm256_loadu_ps(p3[1]), cprev,
                                                                       pre(gx, acc, at + FS_NB)));
        const __m256 g = fs_tanh_ps__avx2(pre(gx, acc, at + gg * FS_NB));
        const __m256 cn = _mm256_fmadd_ps(f, cprev, _mm256_mul_ps(i, g));
        const __m256 o = fs_sigmoid_ps__avx2(_mm256_fmadd_ps(_mm256_loadu_ps(p3[2]), cn, pre(gx, acc, at + go * FS_NB)));
        const __m256 slots[6] = {i, f, g, o, fs_tanh_ps__avx2(cn), cn};
        for (size_t k = 0; k < 6; k++) store_n(act + k * H + j0, slots[k], w);
    }
}

static void gru_rb_record__avx2(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                                const float *hn, const float *h, const float *c, float *act) {
    (void)cp, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const __m256 r = fs_sigmoid_ps__avx2(_mm256_add_ps(_mm256_loadu_ps(gx + j0 * 3), _mm256_loadu_ps(acc + j0 * 2)));
        const __m256 z = fs_sigmoid_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(gx + j0 * 3 + FS_NB), _mm256_loadu_ps(acc + j0 * 2 + FS_NB)));
        const __m256 n = fs_tanh_ps__avx2(_mm256_add_ps(_mm256_loadu_ps(gx + j0 * 3 + 2 * FS_NB), _mm256_loadu_ps(hn + j0)));
        const __m256 slots[4] = {r, z, n, _mm256_mul_ps(r, _mm256_loadu_ps(h + j0))};
        for (size_t k = 0; k < 4; k++) store_n(act + k * H + j0, slots[k], w);
    }
}

static void fastrnn_record__avx2(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                                 const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB)
        store_n(act + j0, role_ps(cp->acts, FS_ROLE_G, pre(gx, acc, j0)), H - j0 < FS_NB ? H - j0 : FS_NB);
}

static void fastgrnn_record__avx2(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                                  const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t w = H - j0 < FS_NB ? H - j0 : FS_NB;
        float bg[FS_NB] = {0}, bu[FS_NB] = {0}; /* the biases are H long */
        memcpy(bg, cp->bg + j0, w * sizeof(float));
        memcpy(bu, cp->bu + j0, w * sizeof(float));
        const __m256 p = pre(gx, acc, j0);
        store_n(act + j0, role_ps(cp->acts, FS_ROLE_F, _mm256_add_ps(p, _mm256_loadu_ps(bg))), w);
        store_n(act + H + j0, role_ps(cp->acts, FS_ROLE_G, _mm256_add_ps(p, _mm256_loadu_ps(bu))), w);
    }
}

static void ugrnn_record__avx2(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                               const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t w = H - j0 < FS_NB ? H - j0 : FS_NB;
        store_n(act + j0, role_ps(cp->acts, FS_ROLE_F, pre(gx, acc, j0 * 2)), w);
        store_n(act + H + j0, role_ps(cp->acts, FS_ROLE_G, pre(gx, acc, j0 * 2 + FS_NB)), w);
    }
}

void fs__train_cells_init_avx2(fs_kernels *k) {
    static const fs_cell_record_fn rec[FS_TRAIN_KINDS] = { /* NULL: the generic kernel stays (both tables) */
        rnn_record__avx2, lstm_record__avx2, gru_record__avx2, lstm_ext_record__avx2,
        gru_rb_record__avx2, fastrnn_record__avx2, fastgrnn_record__avx2,
        [FS_TRAIN_UGRNN] = ugrnn_record__avx2};
    static const fs_cell_backward_fn bwd[FS_TRAIN_KINDS] = {
        rnn_backward__avx2, lstm_backward__avx2, gru_backward__avx2, lstm_ext_backward__avx2,
        gru_rb_backward__avx2, fastrnn_backward__avx2, fastgrnn_backward__avx2,
        [FS_TRAIN_RNN_ACT] = rnn_act_backward__avx2, [FS_TRAIN_LSTM_ACT] = lstm_act_backward__avx2,
        [FS_TRAIN_GRU_ACT] = gru_act_backward__avx2, [FS_TRAIN_GRU_RB_ACT] = gru_rb_act_backward__avx2,
        [FS_TRAIN_UGRNN] = ugrnn_backward__avx2};
    for (int i = 0; i < FS_TRAIN_KINDS; i++) { /* the *_ACT kinds keep the generic record */
        if (rec[i]) k->cell_record[i] = rec[i];
        if (bwd[i]) k->cell_backward[i] = bwd[i];
    }
}
