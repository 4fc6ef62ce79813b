/* AVX-512 cell epilogues: the AVX2 kernels' operations (avx2.c) on
 * two rows at once, row i in lanes 0-7 and row i+1 in lanes 8-15; an odd
 * last row runs in the low half alone. The math is lane-identical to the
 * AVX2 math (one source, vmath_body.h), so every row's result is bit-identical
 * to the AVX2 kernel's whatever rows a call holds (tests/c/test_cells.c). The peephole/coupled
 * LSTM and FastGRNN kernels (per-unit vectors) and the *_act cells stay AVX2. */
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "kernels/cells/avx512.c must be compiled with -mavx512f -mavx512vl -mfma"
#endif

#include "../kernels.h"
#include "avx512.h"

#define ADD(a, b) _mm512_add_ps(a, b)

static void fs_rnn_cell__avx512(size_t m, int relu, const float *gx, size_t ldgx, const float *acc,
                                float *h, size_t ldh) {
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const __m512 pre = ADD(fs__ld2(gx + i * ldgx, ldgx, two), fs__ld2(acc + i * FS_NB, FS_NB, two));
        fs__st2(h + i * ldh, ldh, two, fs__rnn_zmm(pre, relu));
    }
}

static void fs_lstm_cell__avx512(size_t m, const float *gx, size_t ldgx, const float *acc, float *c,
                                 size_t ldc, float *h, size_t ldh) {
    const size_t lda = 4 * FS_NB;
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const float *g = gx + i * ldgx, *r = acc + i * lda;
        __m512 cv = fs__ld2(c + i * ldc, ldc, two);
        const __m512 hv = fs__lstm_zmm(ADD(fs__ld2(g, ldgx, two), fs__ld2(r, lda, two)),
                                       ADD(fs__ld2(g + FS_NB, ldgx, two), fs__ld2(r + FS_NB, lda, two)),
                                       ADD(fs__ld2(g + 2 * FS_NB, ldgx, two), fs__ld2(r + 2 * FS_NB, lda, two)),
                                       ADD(fs__ld2(g + 3 * FS_NB, ldgx, two), fs__ld2(r + 3 * FS_NB, lda, two)), &cv);
        fs__st2(c + i * ldc, ldc, two, cv);
        fs__st2(h + i * ldh, ldh, two, hv);
    }
}

static void fs_gru_cell__avx512(size_t m, const float *gx, size_t ldgx, const float *acc,
                                const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    const size_t lda = 3 * FS_NB;
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const float *g = gx + i * ldgx, *r = acc + i * lda;
        const __m512 hv = fs__gru_zmm(ADD(fs__ld2(g, ldgx, two), fs__ld2(r, lda, two)),
                                      ADD(fs__ld2(g + FS_NB, ldgx, two), fs__ld2(r + FS_NB, lda, two)),
                                      fs__ld2(r + 2 * FS_NB, lda, two), fs__ld2(g + 2 * FS_NB, ldgx, two),
                                      fs__ld2(h_prev + i * ldhp, ldhp, two));
        fs__st2(h + i * ldh, ldh, two, hv);
    }
}

static void fs_gru_rz_cell__avx512(size_t m, const float *gx, size_t ldgx, const float *acc,
                                   const float *h_prev, size_t ldhp, float *rh, float *z, size_t ld) {
    const size_t lda = 2 * FS_NB;
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const float *g = gx + i * ldgx, *r = acc + i * lda;
        const __m512 rg = fs_sigmoid_ps__avx512(ADD(fs__ld2(g, ldgx, two), fs__ld2(r, lda, two)));
        fs__st2(rh + i * ld, ld, two, _mm512_mul_ps(rg, fs__ld2(h_prev + i * ldhp, ldhp, two)));
        const __m512 zg = fs_sigmoid_ps__avx512(ADD(fs__ld2(g + FS_NB, ldgx, two), fs__ld2(r + FS_NB, lda, two)));
        fs__st2(z + i * ld, ld, two, zg);
    }
}

static void fs_gru_n_cell__avx512(size_t m, const float *gx_n, size_t ldgx, const float *acc,
                                  const float *z, size_t ldz, const float *h_prev, size_t ldhp,
                                  float *h, size_t ldh) {
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const __m512 n =
            fs_tanh_ps__avx512(ADD(fs__ld2(gx_n + i * ldgx, ldgx, two), fs__ld2(acc + i * FS_NB, FS_NB, two)));
        const __m512 hp = fs__ld2(h_prev + i * ldhp, ldhp, two);
        /* (1 - z) n + z h  ==  n + z (h - n) */
        fs__st2(h + i * ldh, ldh, two, _mm512_fmadd_ps(fs__ld2(z + i * ldz, ldz, two), _mm512_sub_ps(hp, n), n));
    }
}

/* Role r's activation (fs_acts, no clip): avx2.c's act_ps, lane for lane. */
FS_INLINE __m512 act_zmm(const fs_acts *a, int r, __m512 v) {
    switch (a->kind[r]) {
    case FS_ACT_SIGMOID: return fs_sigmoid_ps__avx512(v);
    case FS_ACT_RELU: return _mm512_max_ps(_mm512_setzero_ps(), v);
    case FS_ACT_HARD_SIGMOID:
        v = _mm512_fmadd_ps(_mm512_set1_ps(a->alpha[r]), v, _mm512_set1_ps(a->beta[r]));
        return _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_setzero_ps(), v));
    case FS_ACT_SOFTSIGN: {
        return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_abs_ps(v)));
    }
    case FS_ACT_HARD_TANH: return _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_set1_ps(-1.0f), v));
    default: return fs_tanh_ps__avx512(v);
    }
}

static void fs_fastrnn_cell__avx512(size_t m, const fs_acts *acts, const float *gx, size_t ldgx, const float *acc,
                                    const float *h_prev, size_t ldhp, float *h, size_t ldh, float a,
                                    float b) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const __m512 pre = ADD(fs__ld2(gx + i * ldgx, ldgx, two), fs__ld2(acc + i * FS_NB, FS_NB, two));
        const __m512 u = act_zmm(acts, FS_ROLE_G, pre);
        const __m512 keep = _mm512_mul_ps(vb, fs__ld2(h_prev + i * ldhp, ldhp, two));
        fs__st2(h + i * ldh, ldh, two, _mm512_fmadd_ps(va, u, keep));
    }
}

void fs__cells_init_avx512(fs_kernels *k) {
    k->rnn_cell = fs_rnn_cell__avx512;
    k->lstm_cell = fs_lstm_cell__avx512;
    k->gru_cell = fs_gru_cell__avx512;
    k->gru_rz_cell = fs_gru_rz_cell__avx512;
    k->gru_n_cell = fs_gru_n_cell__avx512;
    k->fastrnn_cell = fs_fastrnn_cell__avx512;
}
