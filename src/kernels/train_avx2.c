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

static const fs_cell_train avx2[FS_TRAIN_KINDS] = {
    [FS_TRAIN_RNN] = {1, 0, rnn_forward__avx2, rnn_backward__avx2},
    [FS_TRAIN_LSTM] = {5, 0, lstm_forward__avx2, lstm_backward__avx2},
    [FS_TRAIN_GRU] = {4, 1, gru_forward__avx2, gru_backward__avx2},
};

const fs_cell_train *fs__cell_train_avx2(int kind) {
    return kind >= 0 && kind < FS_TRAIN_KINDS ? &avx2[kind] : NULL;
}
