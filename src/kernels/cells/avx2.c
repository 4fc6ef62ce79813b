/* AVX2 + FMA inference cell updates: one register per gate per block of 8
 * units, vectorised nonlinearities (vmath/avx2.h). Training: train_avx2.c. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels/cells/avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>

#include "../kernels.h"
#include "../vmath/avx2.h"

static void fs_rnn_cell__avx2(size_t m, int relu, const float *gx, size_t ldgx, const float *acc,
                              float *h, size_t ldh) {
    const __m256 zero = _mm256_setzero_ps();
    for (size_t i = 0; i < m; i++) {
        const __m256 pre = _mm256_add_ps(_mm256_loadu_ps(gx + i * ldgx), _mm256_loadu_ps(acc + i * FS_NB));
        /* max(0, x) returns x when x is NaN: NaNs propagate like torch.relu */
        _mm256_storeu_ps(h + i * ldh, relu ? _mm256_max_ps(zero, pre) : fs_tanh_ps__avx2(pre));
    }
}

static void fs_lstm_cell__avx2(size_t m, const float *gx, size_t ldgx, const float *acc, float *c,
                               size_t ldc, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 4 * FS_NB;
        const __m256 ig = fs_sigmoid_ps__avx2(_mm256_add_ps(_mm256_loadu_ps(g), _mm256_loadu_ps(r)));
        const __m256 fg = fs_sigmoid_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(g + FS_NB), _mm256_loadu_ps(r + FS_NB)));
        const __m256 gg = fs_tanh_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(g + 2 * FS_NB), _mm256_loadu_ps(r + 2 * FS_NB)));
        const __m256 og = fs_sigmoid_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(g + 3 * FS_NB), _mm256_loadu_ps(r + 3 * FS_NB)));
        const __m256 cn = _mm256_fmadd_ps(fg, _mm256_loadu_ps(c + i * ldc), _mm256_mul_ps(ig, gg));
        _mm256_storeu_ps(c + i * ldc, cn);
        _mm256_storeu_ps(h + i * ldh, _mm256_mul_ps(og, fs_tanh_ps__avx2(cn)));
    }
}

static void fs_gru_cell__avx2(size_t m, const float *gx, size_t ldgx, const float *acc,
                              const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 3 * FS_NB;
        const __m256 rg = fs_sigmoid_ps__avx2(_mm256_add_ps(_mm256_loadu_ps(g), _mm256_loadu_ps(r)));
        const __m256 zg = fs_sigmoid_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(g + FS_NB), _mm256_loadu_ps(r + FS_NB)));
        const __m256 ng = fs_tanh_ps__avx2(
            _mm256_fmadd_ps(rg, _mm256_loadu_ps(r + 2 * FS_NB), _mm256_loadu_ps(g + 2 * FS_NB)));
        const __m256 hp = _mm256_loadu_ps(h_prev + i * ldhp);
        /* (1 - z) n + z h  ==  n + z (h - n) */
        _mm256_storeu_ps(h + i * ldh, _mm256_fmadd_ps(zg, _mm256_sub_ps(hp, ng), ng));
    }
}

#define LD(p) _mm256_loadu_ps(p)
#define ADD(a, b) _mm256_add_ps(a, b)

static void fs_lstm_cell_ext__avx2(size_t m, const float *gx, size_t ldgx, const float *acc,
                                   float *c, size_t ldc, float *h, size_t ldh, const float *pi,
                                   const float *pf, const float *po, int coupled) {
    const size_t G = coupled ? 3 : 4, gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 vpi = pi ? LD(pi) : zero, vpf = pf ? LD(pf) : zero, vpo = po ? LD(po) : zero;
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * G * FS_NB;
        const __m256 cp = LD(c + i * ldc);
        const __m256 ig = fs_sigmoid_ps__avx2(_mm256_fmadd_ps(vpi, cp, ADD(LD(g), LD(r))));
        const __m256 fg = coupled ? _mm256_sub_ps(one, ig)
                                  : fs_sigmoid_ps__avx2(_mm256_fmadd_ps(vpf, cp, ADD(LD(g + FS_NB), LD(r + FS_NB))));
        const __m256 cand = fs_tanh_ps__avx2(ADD(LD(g + gg * FS_NB), LD(r + gg * FS_NB)));
        const __m256 cn = _mm256_fmadd_ps(fg, cp, _mm256_mul_ps(ig, cand));
        const __m256 og = fs_sigmoid_ps__avx2(_mm256_fmadd_ps(vpo, cn, ADD(LD(g + go * FS_NB), LD(r + go * FS_NB))));
        _mm256_storeu_ps(c + i * ldc, cn);
        _mm256_storeu_ps(h + i * ldh, _mm256_mul_ps(og, fs_tanh_ps__avx2(cn)));
    }
}

static void fs_gru_rz_cell__avx2(size_t m, const float *gx, size_t ldgx, const float *acc,
                                 const float *h_prev, size_t ldhp, float *rh, float *z, size_t ld) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 2 * FS_NB;
        _mm256_storeu_ps(rh + i * ld, _mm256_mul_ps(fs_sigmoid_ps__avx2(ADD(LD(g), LD(r))), LD(h_prev + i * ldhp)));
        _mm256_storeu_ps(z + i * ld, fs_sigmoid_ps__avx2(ADD(LD(g + FS_NB), LD(r + FS_NB))));
    }
}

static void fs_gru_n_cell__avx2(size_t m, const float *gx_n, size_t ldgx, const float *acc,
                                const float *z, size_t ldz, const float *h_prev, size_t ldhp,
                                float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const __m256 n = fs_tanh_ps__avx2(ADD(LD(gx_n + i * ldgx), LD(acc + i * FS_NB)));
        /* (1 - z) n + z h  ==  n + z (h - n) */
        _mm256_storeu_ps(h + i * ldh, _mm256_fmadd_ps(LD(z + i * ldz), _mm256_sub_ps(LD(h_prev + i * ldhp), n), n));
    }
}

/* ---- the cells with chosen activations (fs_acts), one register per gate ---- */

/* Role r's activation of v (v clipped first when a->clip > 0: roles f, g).
 * max(lo, v) and min(hi, v) return v when v is NaN: NaNs pass through as in
 * the generic cells. */
static inline __m256 act_ps(const fs_acts *a, int r, __m256 v, int clip) {
    if (clip && a->clip > 0.0f)
        v = _mm256_min_ps(_mm256_set1_ps(a->clip), _mm256_max_ps(_mm256_set1_ps(-a->clip), v));
    switch (a->kind[r]) {
    case FS_ACT_SIGMOID: return fs_sigmoid_ps__avx2(v);
    case FS_ACT_RELU: return _mm256_max_ps(_mm256_setzero_ps(), v);
    case FS_ACT_HARD_SIGMOID:
        v = _mm256_fmadd_ps(_mm256_set1_ps(a->alpha[r]), v, _mm256_set1_ps(a->beta[r]));
        return _mm256_min_ps(_mm256_set1_ps(1.0f), _mm256_max_ps(_mm256_setzero_ps(), v));
    case FS_ACT_SOFTSIGN: {
        const __m256 abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
        return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), abs));
    }
    case FS_ACT_HARD_TANH: return _mm256_min_ps(_mm256_set1_ps(1.0f), _mm256_max_ps(_mm256_set1_ps(-1.0f), v));
    default: return fs_tanh_ps__avx2(v);
    }
}

static void fs_fastrnn_cell__avx2(size_t m, const fs_acts *acts, const float *gx, size_t ldgx, const float *acc,
                                  const float *h_prev, size_t ldhp, float *h, size_t ldh, float a,
                                  float b) {
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    for (size_t i = 0; i < m; i++) {
        const __m256 u = act_ps(acts, FS_ROLE_G, ADD(LD(gx + i * ldgx), LD(acc + i * FS_NB)), 0);
        _mm256_storeu_ps(h + i * ldh, _mm256_fmadd_ps(va, u, _mm256_mul_ps(vb, LD(h_prev + i * ldhp))));
    }
}

static void fs_fastgrnn_cell__avx2(size_t m, const fs_acts *acts, const float *gx, size_t ldgx,
                                   const float *acc, const float *bg, const float *bu,
                                   const float *h_prev, size_t ldhp, float *h, size_t ldh,
                                   float zeta, float nu) {
    const __m256 vz = _mm256_set1_ps(zeta), vn = _mm256_set1_ps(nu), one = _mm256_set1_ps(1.0f);
    const __m256 vbg = LD(bg), vbu = LD(bu);
    for (size_t i = 0; i < m; i++) {
        const __m256 pre = ADD(LD(gx + i * ldgx), LD(acc + i * FS_NB));
        const __m256 z = act_ps(acts, FS_ROLE_F, ADD(pre, vbg), 0),
                     u = act_ps(acts, FS_ROLE_G, ADD(pre, vbu), 0);
        const __m256 keep = _mm256_fmadd_ps(vz, _mm256_sub_ps(one, z), vn);
        _mm256_storeu_ps(h + i * ldh, _mm256_fmadd_ps(z, LD(h_prev + i * ldhp), _mm256_mul_ps(keep, u)));
    }
}

static inline __m256 sum_ps(const float *p, const float *q) {
    return _mm256_add_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(q));
}

static void fs_ugrnn_cell__avx2(size_t m, const fs_acts *acts, const float *gx, size_t ldgx, const float *acc,
                                const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 2 * FS_NB;
        const __m256 z = act_ps(acts, FS_ROLE_F, sum_ps(g, r), 0);
        const __m256 c = act_ps(acts, FS_ROLE_G, sum_ps(g + FS_NB, r + FS_NB), 0);
        /* z h + (1 - z) c  ==  c + z (h - c) */
        _mm256_storeu_ps(h + i * ldh, _mm256_fmadd_ps(z, _mm256_sub_ps(LD(h_prev + i * ldhp), c), c));
    }
}

static void fs_rnn_cell_act__avx2(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                  const float *acc, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++)
        _mm256_storeu_ps(h + i * ldh, act_ps(a, FS_ROLE_F, sum_ps(gx + i * ldgx, acc + i * FS_NB), 1));
}

static void fs_lstm_cell_act__avx2(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                   const float *acc, float *c, size_t ldc, float *h, size_t ldh,
                                   const float *pi, const float *pf, const float *po, int coupled) {
    const size_t G = coupled ? 3 : 4, gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    const __m256 zero = _mm256_setzero_ps();
    const __m256 vpi = pi ? _mm256_loadu_ps(pi) : zero, vpf = pf ? _mm256_loadu_ps(pf) : zero;
    const __m256 vpo = po ? _mm256_loadu_ps(po) : zero;
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * G * FS_NB;
        const __m256 cp = _mm256_loadu_ps(c + i * ldc);
        const __m256 ig = act_ps(a, FS_ROLE_F, _mm256_fmadd_ps(vpi, cp, sum_ps(g, r)), 1);
        const __m256 fg = coupled ? _mm256_sub_ps(_mm256_set1_ps(1.0f), ig)
                                  : act_ps(a, FS_ROLE_F, _mm256_fmadd_ps(vpf, cp, sum_ps(g + FS_NB, r + FS_NB)), 1);
        const __m256 cand = act_ps(a, FS_ROLE_G, sum_ps(g + gg * FS_NB, r + gg * FS_NB), 1);
        const __m256 cn = _mm256_fmadd_ps(fg, cp, _mm256_mul_ps(ig, cand));
        const __m256 og = act_ps(a, FS_ROLE_F, _mm256_fmadd_ps(vpo, cn, sum_ps(g + go * FS_NB, r + go * FS_NB)), 1);
        _mm256_storeu_ps(c + i * ldc, cn);
        _mm256_storeu_ps(h + i * ldh, _mm256_mul_ps(og, act_ps(a, FS_ROLE_H, cn, 0)));
    }
}

/* (1 - z) n + z h_prev */
static inline __m256 gru_mix_ps(__m256 z, __m256 n, __m256 hp) {
    return _mm256_fmadd_ps(z, _mm256_sub_ps(hp, n), n);
}

static void fs_gru_cell_act__avx2(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                  const float *acc, const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 3 * FS_NB;
        const __m256 rg = act_ps(a, FS_ROLE_F, sum_ps(g, r), 1);
        const __m256 zg = act_ps(a, FS_ROLE_F, sum_ps(g + FS_NB, r + FS_NB), 1);
        const __m256 ng = act_ps(a, FS_ROLE_G, _mm256_fmadd_ps(rg, _mm256_loadu_ps(r + 2 * FS_NB),
                                                               _mm256_loadu_ps(g + 2 * FS_NB)), 1);
        _mm256_storeu_ps(h + i * ldh, gru_mix_ps(zg, ng, _mm256_loadu_ps(h_prev + i * ldhp)));
    }
}

static void fs_gru_rz_cell_act__avx2(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                     const float *acc, const float *h_prev, size_t ldhp, float *rh,
                                     float *z, size_t ld) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 2 * FS_NB;
        const __m256 rg = act_ps(a, FS_ROLE_F, sum_ps(g, r), 1);
        _mm256_storeu_ps(rh + i * ld, _mm256_mul_ps(rg, _mm256_loadu_ps(h_prev + i * ldhp)));
        _mm256_storeu_ps(z + i * ld, act_ps(a, FS_ROLE_F, sum_ps(g + FS_NB, r + FS_NB), 1));
    }
}

static void fs_gru_n_cell_act__avx2(size_t m, const fs_acts *a, const float *gx_n, size_t ldgx,
                                    const float *acc, const float *z, size_t ldz, const float *h_prev,
                                    size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const __m256 n = act_ps(a, FS_ROLE_G, sum_ps(gx_n + i * ldgx, acc + i * FS_NB), 1);
        _mm256_storeu_ps(h + i * ldh, gru_mix_ps(_mm256_loadu_ps(z + i * ldz), n, _mm256_loadu_ps(h_prev + i * ldhp)));
    }
}

void fs__cells_init_avx2(fs_kernels *k) {
    k->rnn_cell_act = fs_rnn_cell_act__avx2;
    k->lstm_cell_act = fs_lstm_cell_act__avx2;
    k->gru_cell_act = fs_gru_cell_act__avx2;
    k->gru_rz_cell_act = fs_gru_rz_cell_act__avx2;
    k->gru_n_cell_act = fs_gru_n_cell_act__avx2;
    k->rnn_cell = fs_rnn_cell__avx2;
    k->lstm_cell = fs_lstm_cell__avx2;
    k->gru_cell = fs_gru_cell__avx2;
    k->lstm_cell_ext = fs_lstm_cell_ext__avx2;
    k->gru_rz_cell = fs_gru_rz_cell__avx2;
    k->gru_n_cell = fs_gru_n_cell__avx2;
    k->fastrnn_cell = fs_fastrnn_cell__avx2;
    k->fastgrnn_cell = fs_fastgrnn_cell__avx2;
    k->ugrnn_cell = fs_ugrnn_cell__avx2;
}
