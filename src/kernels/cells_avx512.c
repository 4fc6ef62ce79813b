/* AVX-512 cell epilogues: the AVX2 kernels' operations (kernels/avx2.c) on
 * two rows at once, row i in lanes 0-7 and row i+1 in lanes 8-15; an odd
 * last row runs in the low half alone. The math is lane-identical to the
 * AVX2 math (one source, vmath_body.h), so every row's result is bit-identical
 * to the AVX2 kernel's whatever rows a call holds (tests/c/test_cells.c). The peephole/coupled
 * LSTM and FastGRNN kernels (per-unit vectors) stay AVX2. */
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "kernels/cells_avx512.c must be compiled with -mavx512f -mavx512vl -mfma"
#endif

#include <immintrin.h>

#include "kernels.h"
#include "vmath_avx512.h"

#define FS_INLINE static inline __attribute__((always_inline))

/* Rows p and p + ld into one zmm; with one row (two == 0), zeros above it. */
FS_INLINE __m512 ld2(const float *p, size_t ld, int two) {
    const __m512d lo = _mm512_zextpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(p)));
    if (!two) return _mm512_castpd_ps(lo);
    return _mm512_castpd_ps(_mm512_insertf64x4(lo, _mm256_castps_pd(_mm256_loadu_ps(p + ld)), 1));
}

FS_INLINE void st2(float *p, size_t ld, int two, __m512 v) {
    _mm256_storeu_ps(p, _mm512_castps512_ps256(v));
    if (two) _mm256_storeu_ps(p + ld, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

#define ADD(a, b) _mm512_add_ps(a, b)

static void fs_rnn_cell__avx512(size_t m, int relu, const float *gx, size_t ldgx, const float *acc,
                                float *h, size_t ldh) {
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const __m512 pre = ADD(ld2(gx + i * ldgx, ldgx, two), ld2(acc + i * FS_NB, FS_NB, two));
        /* max(0, x) returns x when x is NaN: NaNs propagate like torch.relu */
        st2(h + i * ldh, ldh, two, relu ? _mm512_max_ps(_mm512_setzero_ps(), pre) : fs_tanh_ps__avx512(pre));
    }
}

static void fs_lstm_cell__avx512(size_t m, const float *gx, size_t ldgx, const float *acc, float *c,
                                 size_t ldc, float *h, size_t ldh) {
    const size_t lda = 4 * FS_NB;
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const float *g = gx + i * ldgx, *r = acc + i * lda;
        const __m512 ig = fs_sigmoid_ps__avx512(ADD(ld2(g, ldgx, two), ld2(r, lda, two)));
        const __m512 fg = fs_sigmoid_ps__avx512(ADD(ld2(g + FS_NB, ldgx, two), ld2(r + FS_NB, lda, two)));
        const __m512 gg = fs_tanh_ps__avx512(ADD(ld2(g + 2 * FS_NB, ldgx, two), ld2(r + 2 * FS_NB, lda, two)));
        const __m512 og = fs_sigmoid_ps__avx512(ADD(ld2(g + 3 * FS_NB, ldgx, two), ld2(r + 3 * FS_NB, lda, two)));
        const __m512 cn = _mm512_fmadd_ps(fg, ld2(c + i * ldc, ldc, two), _mm512_mul_ps(ig, gg));
        st2(c + i * ldc, ldc, two, cn);
        st2(h + i * ldh, ldh, two, _mm512_mul_ps(og, fs_tanh_ps__avx512(cn)));
    }
}

static void fs_gru_cell__avx512(size_t m, const float *gx, size_t ldgx, const float *acc,
                                const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    const size_t lda = 3 * FS_NB;
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const float *g = gx + i * ldgx, *r = acc + i * lda;
        const __m512 rg = fs_sigmoid_ps__avx512(ADD(ld2(g, ldgx, two), ld2(r, lda, two)));
        const __m512 zg = fs_sigmoid_ps__avx512(ADD(ld2(g + FS_NB, ldgx, two), ld2(r + FS_NB, lda, two)));
        const __m512 ng = fs_tanh_ps__avx512(
            _mm512_fmadd_ps(rg, ld2(r + 2 * FS_NB, lda, two), ld2(g + 2 * FS_NB, ldgx, two)));
        const __m512 hp = ld2(h_prev + i * ldhp, ldhp, two);
        /* (1 - z) n + z h  ==  n + z (h - n) */
        st2(h + i * ldh, ldh, two, _mm512_fmadd_ps(zg, _mm512_sub_ps(hp, ng), ng));
    }
}

static void fs_gru_rz_cell__avx512(size_t m, const float *gx, size_t ldgx, const float *acc,
                                   const float *h_prev, size_t ldhp, float *rh, float *z, size_t ld) {
    const size_t lda = 2 * FS_NB;
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const float *g = gx + i * ldgx, *r = acc + i * lda;
        const __m512 rg = fs_sigmoid_ps__avx512(ADD(ld2(g, ldgx, two), ld2(r, lda, two)));
        st2(rh + i * ld, ld, two, _mm512_mul_ps(rg, ld2(h_prev + i * ldhp, ldhp, two)));
        st2(z + i * ld, ld, two, fs_sigmoid_ps__avx512(ADD(ld2(g + FS_NB, ldgx, two), ld2(r + FS_NB, lda, two))));
    }
}

static void fs_gru_n_cell__avx512(size_t m, const float *gx_n, size_t ldgx, const float *acc,
                                  const float *z, size_t ldz, const float *h_prev, size_t ldhp,
                                  float *h, size_t ldh) {
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const __m512 n = fs_tanh_ps__avx512(ADD(ld2(gx_n + i * ldgx, ldgx, two), ld2(acc + i * FS_NB, FS_NB, two)));
        const __m512 hp = ld2(h_prev + i * ldhp, ldhp, two);
        /* (1 - z) n + z h  ==  n + z (h - n) */
        st2(h + i * ldh, ldh, two, _mm512_fmadd_ps(ld2(z + i * ldz, ldz, two), _mm512_sub_ps(hp, n), n));
    }
}

static void fs_fastrnn_cell__avx512(size_t m, int kind, const float *gx, size_t ldgx, const float *acc,
                                    const float *h_prev, size_t ldhp, float *h, size_t ldh, float a,
                                    float b) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (size_t i = 0; i < m; i += 2) {
        const int two = i + 1 < m;
        const __m512 pre = ADD(ld2(gx + i * ldgx, ldgx, two), ld2(acc + i * FS_NB, FS_NB, two));
        const __m512 u = kind == FS_ACT_SIGMOID ? fs_sigmoid_ps__avx512(pre)
                         : kind == FS_ACT_RELU  ? _mm512_max_ps(_mm512_setzero_ps(), pre)
                                                : fs_tanh_ps__avx512(pre);
        st2(h + i * ldh, ldh, two, _mm512_fmadd_ps(va, u, _mm512_mul_ps(vb, ld2(h_prev + i * ldhp, ldhp, two))));
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
